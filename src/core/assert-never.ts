// Exhaustiveness guard for switches over discriminated unions.
export function assertNever(x: never): never {
  throw new Error(`unexpected value: ${JSON.stringify(x)}`);
}
