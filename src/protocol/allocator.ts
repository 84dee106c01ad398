/**
 * Where the core gets byte buffers for packets and messages. The default is plain `Uint8Array`; the
 * Node drivers pass `Buffer.allocUnsafe`, whose pooled small buffers cost a fraction of a fresh
 * ArrayBuffer (allocation was about a third of the engine's per-packet CPU time before this).
 * Callers of an allocator always overwrite every byte they asked for.
 */
export type Allocator = (size: number) => Uint8Array;

export const defaultAllocator: Allocator = (size) => new Uint8Array(size);
