// A small horizontal bar chart as SVG text: one bar per library, labelled with its value and
// its ratio to the baseline. Hand-written because the charts are simple and static.

export interface Bar {
  label: string
  value: number
  ratio: number | undefined
  baseline: boolean
}

function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
}

export function barChart(title: string, unit: string, bars: Bar[]): string {
  const width = 720
  const labelWidth = 230
  const barArea = width - labelWidth - 170
  const rowHeight = 28
  const top = 40
  const height = top + bars.length * rowHeight + 16
  const max = Math.max(...bars.map((b) => b.value), 1)
  const rows = bars.map((bar, i) => {
    const y = top + i * rowHeight
    const length = Math.max(2, (bar.value / max) * barArea)
    const color = bar.label.startsWith('memkit') ? '#2f6fdb' : bar.baseline ? '#8a8f98' : '#b9bec7'
    const figure = `${bar.value >= 100 ? Math.round(bar.value).toLocaleString('en-US') : bar.value.toFixed(2)} ${unit}`
    const ratio = bar.ratio === undefined ? '' : ` (${bar.ratio.toFixed(2)}x)`
    return [
      `<text x="${labelWidth - 8}" y="${y + 17}" text-anchor="end">${escapeXml(bar.label)}</text>`,
      `<rect x="${labelWidth}" y="${y + 4}" width="${length.toFixed(1)}" height="${rowHeight - 10}" fill="${color}" rx="2"/>`,
      `<text x="${labelWidth + length + 6}" y="${y + 17}">${escapeXml(figure + ratio)}</text>`,
    ].join('')
  })
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="13">
<rect width="100%" height="100%" fill="#ffffff"/>
<text x="12" y="24" font-size="15" font-weight="bold">${escapeXml(title)}</text>
${rows.join('\n')}
</svg>
`
}
