//! Looks for what an earlier request left in linear memory: a counter in
//! the data segment, a 2 MiB zero-initialised array, and a 1 MiB heap
//! buffer. Each request reports what it found, then dirties all of it (one
//! byte in every page, past the pool's 256 KiB keep-resident ceiling), so
//! a reset that missed a page would show in the next answer. A fresh
//! instance answers `counter=1 dirty_static=0 dirty_heap=0` every time.
//!
//! `?stride=N` dirties the array every N bytes instead (a multiple of
//! 4096): 8192 leaves a clean page between dirty ones, so the dirty pages
//! form hundreds of separate regions, the pattern a JavaScript engine's
//! heap leaves and the case a reset by dirtied pages must walk in parts.

use std::sync::atomic::{AtomicU64, Ordering};
use verge_sdk::{Request, Response};

/// Bytes of the zero-initialised array (.bss).
const STATIC_BYTES: usize = 2 << 20;
/// Bytes of the heap buffer.
const HEAP_BYTES: usize = 1 << 20;
/// Bytes between two dirtied bytes: one per 4 KiB host page.
const STRIDE: usize = 4096;
/// The largest `?stride=` taken: one dirty page in the array.
const MAX_STRIDE: usize = STATIC_BYTES;

static COUNTER: AtomicU64 = AtomicU64::new(0);
static mut ARRAY: [u8; STATIC_BYTES] = [0; STATIC_BYTES];

#[verge_sdk::handler]
fn handle(req: Request) -> Response {
    let array_stride = req
        .query_param("stride")
        .and_then(|s| s.parse::<usize>().ok())
        .filter(|s| (STRIDE..=MAX_STRIDE).contains(s))
        .unwrap_or(STRIDE);
    let counter = COUNTER.fetch_add(1, Ordering::Relaxed) + 1;
    // SAFETY: one request at a time runs in an instance; nothing else
    // touches the array.
    #[allow(unsafe_code, reason = "a plain static buffer in linear memory")]
    let array = unsafe { &mut *std::ptr::addr_of_mut!(ARRAY) };
    let dirty_static = array.iter().filter(|&&b| b != 0).count();
    // Uninitialised heap memory: what the allocator hands back is whatever
    // the pages hold, zero in a fresh instance.
    let mut heap: Vec<u8> = Vec::with_capacity(HEAP_BYTES);
    let spare = heap.spare_capacity_mut();
    #[allow(unsafe_code, reason = "reading fresh pages of linear memory")]
    let dirty_heap = spare
        .iter()
        .filter(|b| unsafe { b.assume_init_read() } != 0)
        .count();
    for i in (0..STATIC_BYTES).step_by(array_stride) {
        array[i] = 0xAB;
    }
    heap.resize(HEAP_BYTES, 0);
    for i in (0..HEAP_BYTES).step_by(STRIDE) {
        heap[i] = 0xCD;
    }
    std::hint::black_box(&heap);
    Response::text(format!(
        "counter={counter} dirty_static={dirty_static} dirty_heap={dirty_heap}\n"
    ))
}
