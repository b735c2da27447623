// memjs is an optional peer dependency, loaded only by the binary transport, which describes
// the small part of it it uses with its own types (protocol/binary.ts).
declare module 'memjs'
