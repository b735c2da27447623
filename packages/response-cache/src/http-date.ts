// HTTP-date (RFC 9110 §5.6.7): IMF-fixdate, plus the obsolete RFC 850 and asctime forms that
// recipients must accept (names in any case). Anything else is invalid; `Date.parse` is
// deliberately not used, because it accepts "0" or "tomorrow-ish" strings that a cache must treat
// as invalid.

const MONTHS: Record<string, number> = {
  Jan: 0,
  Feb: 1,
  Mar: 2,
  Apr: 3,
  May: 4,
  Jun: 5,
  Jul: 6,
  Aug: 7,
  Sep: 8,
  Oct: 9,
  Nov: 10,
  Dec: 11,
}

// The names are case-sensitive in the grammar; like most caches (and the HTTP caching test
// suite's optimal behaviour), any case is accepted: "THU, 18 AUG 2050 02:01:18 gmt" means one time.
const IMF = /^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), (\d{2}) ([A-Z]{3}) (\d{4}) (\d{2}):(\d{2}):(\d{2}) GMT$/i
const RFC850 =
  /^(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday), (\d{2})-([A-Z]{3})-(\d{2}) (\d{2}):(\d{2}):(\d{2}) GMT$/i
const ASCTIME = /^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) ([A-Z]{3}) ( \d|\d{2}) (\d{2}):(\d{2}):(\d{2}) (\d{4})$/i

/** Milliseconds since the epoch, or undefined when the text is not an HTTP-date. */
export function parseHttpDate(text: string | undefined): number | undefined {
  if (text === undefined) return undefined
  const value = text.trim()
  let m = IMF.exec(value)
  if (m) return build(Number(m[3]), m[2]!, Number(m[1]), m[4]!, m[5]!, m[6]!)
  m = RFC850.exec(value)
  if (m) {
    // Two-digit years: RFC 9110 says to read them as the most recent past year with those digits
    // that is not more than 50 years in the future.
    const yy = Number(m[3])
    const now = new Date().getUTCFullYear()
    let year = Math.floor(now / 100) * 100 + yy
    if (year > now + 50) year -= 100
    return build(year, m[2]!, Number(m[1]), m[4]!, m[5]!, m[6]!)
  }
  m = ASCTIME.exec(value)
  if (m) return build(Number(m[6]), m[1]!, Number(m[2]!.trim()), m[3]!, m[4]!, m[5]!)
  return undefined
}

function build(
  year: number,
  month: string,
  day: number,
  h: string,
  mi: string,
  s: string,
): number | undefined {
  const monthIndex = MONTHS[month[0]!.toUpperCase() + month.slice(1).toLowerCase()]
  if (monthIndex === undefined) return undefined
  const hours = Number(h)
  const minutes = Number(mi)
  const seconds = Number(s)
  if (day < 1 || day > 31 || hours > 23 || minutes > 59 || seconds > 60) return undefined
  const ms = Date.UTC(year, monthIndex, day, hours, minutes, seconds)
  // Rejects 31 Feb and friends, which Date.UTC would roll over into March.
  if (new Date(ms).getUTCDate() !== day) return undefined
  return ms
}

export function formatHttpDate(ms: number): string {
  return new Date(ms).toUTCString()
}
