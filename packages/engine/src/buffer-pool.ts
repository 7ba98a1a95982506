/** Fixed set of equal-size buffers handed out and returned; waiting callers queue. */
export class BufferPool {
  readonly #free: ArrayBuffer[] = [];
  readonly #waiting: Array<(b: ArrayBuffer) => void> = [];
  constructor(
    private readonly size: number,
    count: number,
  ) {
    for (let i = 0; i < count; i++) this.#free.push(new ArrayBuffer(size));
  }
  acquire(): Promise<ArrayBuffer> {
    const b = this.#free.pop();
    return b ? Promise.resolve(b) : new Promise((resolve) => this.#waiting.push(resolve));
  }
  release(b: ArrayBuffer): void {
    // A buffer lost to a failed worker call is replaced, so the pool never shrinks.
    const buffer = b.byteLength === this.size ? b : new ArrayBuffer(this.size);
    const waiter = this.#waiting.shift();
    if (waiter) waiter(buffer);
    else this.#free.push(buffer);
  }
}
