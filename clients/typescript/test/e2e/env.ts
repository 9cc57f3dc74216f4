// What tests/e2e/test_typescript.py passes to these tests: the server's address and the
// invocations it prepared, in INVOCTL_* variables.

export function env(name: string): string {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set: tests/e2e/test_typescript.py runs this test`);
  }
  return value;
}

/** Every message of a stream, to its end. */
export async function collect<T>(stream: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of stream) {
    out.push(item);
  }
  return out;
}

/** The error (of `type`) a promise was rejected with; fails if it resolved. */
export async function rejection<E>(
  promise: Promise<unknown>,
  type: new (...args: never[]) => E,
): Promise<E> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof type) {
      return err;
    }
    throw err;
  }
  throw new Error("the request was accepted; it should have been refused");
}
