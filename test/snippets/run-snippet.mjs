// Runs one README snippet (argv[2]) as an application would run it, then exits: a snippet
// shows setup code and need not close what it opened. A thrown error or a rejected top-level
// await fails the run (exit code 1, the error on stderr); so does anything else on stderr.
import { pathToFileURL } from 'node:url'

await import(pathToFileURL(process.argv[2]).href)
// Let callbacks queued by the snippet's last statement run (an 'error' event, a rejection).
await new Promise((resolve) => setImmediate(resolve))
process.exit(0)
