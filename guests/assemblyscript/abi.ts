// The host's side of the sluice guest ABI (abi/README.md in sluice): the
// imports of module "sluice" and the few WASI functions the SDK uses. A
// module imports only the functions it calls, so a handler that never
// sets an HTTP status does not import http_status.

@external("sluice", "output")
export declare function output(ptr: usize, len: usize): void;

@external("sluice", "fail")
export declare function fail(ptr: usize, len: usize): void;

@external("sluice", "log")
export declare function log(level: i32, ptr: usize, len: usize): void;

@external("sluice", "meta_get")
export declare function meta_get(keyPtr: usize, keyLen: usize, bufPtr: usize, bufCap: usize): i32;

// ABI 1.1
@external("sluice", "http_status")
export declare function http_status(code: i32): void;

// ABI 1.1
@external("sluice", "http_header")
export declare function http_header(namePtr: usize, nameLen: usize, valPtr: usize, valLen: usize): void;

// ABI 1.2
@external("sluice", "error_code")
export declare function error_code(ptr: usize, len: usize): void;

// WASI preview 1: what every guest gets (no filesystem, no network).

@external("wasi_snapshot_preview1", "fd_write")
export declare function fd_write(fd: u32, iovs: usize, iovsLen: usize, written: usize): u16;

@external("wasi_snapshot_preview1", "fd_read")
export declare function fd_read(fd: u32, iovs: usize, iovsLen: usize, read: usize): u16;

@external("wasi_snapshot_preview1", "proc_exit")
export declare function proc_exit(code: u32): void;

@external("wasi_snapshot_preview1", "random_get")
export declare function random_get(buf: usize, len: usize): u16;

@external("wasi_snapshot_preview1", "clock_time_get")
export declare function clock_time_get(id: u32, precision: u64, time: usize): u16;

@external("wasi_snapshot_preview1", "environ_sizes_get")
export declare function environ_sizes_get(count: usize, size: usize): u16;

@external("wasi_snapshot_preview1", "environ_get")
export declare function environ_get(environ: usize, buf: usize): u16;
