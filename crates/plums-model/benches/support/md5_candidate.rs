//! A candidate MD5 for `crate::hash` (issue 5: strict validation at the MD5 limit), benched
//! against the library's `md-5` (asm) in `md5/candidate_64MiB`. Not used by the library.
//!
//! MD5 is one long dependency chain, so its speed is the latency of each step. This version
//! keeps off the chain everything that does not depend on the previous step's result: the
//! message word and the constant are added first, `G` is split into two disjoint terms added
//! separately (`(b & d) + (c & !d)`, the second one ready early), and `F`, `H`, `I` are written
//! so that the newest value enters last (`((c ^ d) & b) ^ d`, `b ^ (c ^ d)`, `c ^ (b | !d)`).
//! Pure safe Rust, no assembly.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

const RC: [u32; 64] = [
    0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501, 0x698098d8,
    0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821, 0xf61e2562, 0xc040b340,
    0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8, 0x21e1cde6, 0xc33707d6, 0xf4d50d87,
    0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a, 0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c,
    0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70, 0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039,
    0xe6db99e5, 0x1fa27cf8, 0xc4ac5665, 0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92,
    0xffeff47d, 0x85845dd1, 0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb,
    0xeb86d391,
];

macro_rules! step {
    (F, $a:ident, $b:ident, $c:ident, $d:ident, $m:expr, $k:expr, $s:expr) => {
        $a = $a.wrapping_add($m).wrapping_add($k).wrapping_add((($c ^ $d) & $b) ^ $d).rotate_left($s).wrapping_add($b)
    };
    (G, $a:ident, $b:ident, $c:ident, $d:ident, $m:expr, $k:expr, $s:expr) => {
        $a = $a
            .wrapping_add($m)
            .wrapping_add($k)
            .wrapping_add($c & !$d)
            .wrapping_add($b & $d)
            .rotate_left($s)
            .wrapping_add($b)
    };
    (H, $a:ident, $b:ident, $c:ident, $d:ident, $m:expr, $k:expr, $s:expr) => {
        $a = $a.wrapping_add($m).wrapping_add($k).wrapping_add($b ^ ($c ^ $d)).rotate_left($s).wrapping_add($b)
    };
    (I, $a:ident, $b:ident, $c:ident, $d:ident, $m:expr, $k:expr, $s:expr) => {
        $a = $a.wrapping_add($m).wrapping_add($k).wrapping_add($c ^ ($b | !$d)).rotate_left($s).wrapping_add($b)
    };
}

/// Four steps of one round, with the message word order `o` and shifts `s`.
macro_rules! four {
    ($f:ident, $a:ident, $b:ident, $c:ident, $d:ident, $x:ident, $r:expr, [$o0:expr, $o1:expr, $o2:expr, $o3:expr], [$s0:expr, $s1:expr, $s2:expr, $s3:expr]) => {{
        step!($f, $a, $b, $c, $d, $x[$o0], RC[$r], $s0);
        step!($f, $d, $a, $b, $c, $x[$o1], RC[$r + 1], $s1);
        step!($f, $c, $d, $a, $b, $x[$o2], RC[$r + 2], $s2);
        step!($f, $b, $c, $d, $a, $x[$o3], RC[$r + 3], $s3);
    }};
}

#[inline(always)]
fn compress(state: &mut [u32; 4], block: &[u8]) {
    let mut x = [0u32; 16];
    for (w, c) in x.iter_mut().zip(block.chunks_exact(4)) {
        *w = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
    }
    let [mut a, mut b, mut c, mut d] = *state;
    four!(F, a, b, c, d, x, 0, [0, 1, 2, 3], [7, 12, 17, 22]);
    four!(F, a, b, c, d, x, 4, [4, 5, 6, 7], [7, 12, 17, 22]);
    four!(F, a, b, c, d, x, 8, [8, 9, 10, 11], [7, 12, 17, 22]);
    four!(F, a, b, c, d, x, 12, [12, 13, 14, 15], [7, 12, 17, 22]);
    four!(G, a, b, c, d, x, 16, [1, 6, 11, 0], [5, 9, 14, 20]);
    four!(G, a, b, c, d, x, 20, [5, 10, 15, 4], [5, 9, 14, 20]);
    four!(G, a, b, c, d, x, 24, [9, 14, 3, 8], [5, 9, 14, 20]);
    four!(G, a, b, c, d, x, 28, [13, 2, 7, 12], [5, 9, 14, 20]);
    four!(H, a, b, c, d, x, 32, [5, 8, 11, 14], [4, 11, 16, 23]);
    four!(H, a, b, c, d, x, 36, [1, 4, 7, 10], [4, 11, 16, 23]);
    four!(H, a, b, c, d, x, 40, [13, 0, 3, 6], [4, 11, 16, 23]);
    four!(H, a, b, c, d, x, 44, [9, 12, 15, 2], [4, 11, 16, 23]);
    four!(I, a, b, c, d, x, 48, [0, 7, 14, 5], [6, 10, 15, 21]);
    four!(I, a, b, c, d, x, 52, [12, 3, 10, 1], [6, 10, 15, 21]);
    four!(I, a, b, c, d, x, 56, [8, 15, 6, 13], [6, 10, 15, 21]);
    four!(I, a, b, c, d, x, 60, [4, 11, 2, 9], [6, 10, 15, 21]);
    for (s, v) in state.iter_mut().zip([a, b, c, d]) {
        *s = s.wrapping_add(v);
    }
}

/// Streaming MD5.
pub struct Md5 {
    state: [u32; 4],
    len: u64,
    buf: [u8; 64],
    buffered: usize,
}

impl Md5 {
    pub fn new() -> Self {
        Md5 { state: [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476], len: 0, buf: [0; 64], buffered: 0 }
    }

    pub fn update(&mut self, mut data: &[u8]) {
        self.len += data.len() as u64;
        if self.buffered > 0 {
            let take = (64 - self.buffered).min(data.len());
            self.buf[self.buffered..self.buffered + take].copy_from_slice(&data[..take]);
            self.buffered += take;
            data = &data[take..];
            if self.buffered < 64 {
                return;
            }
            let block = self.buf;
            compress(&mut self.state, &block);
            self.buffered = 0;
        }
        let mut blocks = data.chunks_exact(64);
        for block in &mut blocks {
            compress(&mut self.state, block);
        }
        let rest = blocks.remainder();
        self.buf[..rest.len()].copy_from_slice(rest);
        self.buffered = rest.len();
    }

    pub fn finalize(mut self) -> [u8; 16] {
        let bits = self.len.wrapping_mul(8);
        let mut pad = [0u8; 72];
        pad[0] = 0x80;
        let pad_len = if self.buffered < 56 { 56 - self.buffered } else { 120 - self.buffered };
        self.update(&pad[..pad_len]);
        self.update(&bits.to_le_bytes());
        debug_assert_eq!(self.buffered, 0);
        let mut out = [0u8; 16];
        for (o, w) in out.chunks_exact_mut(4).zip(self.state) {
            o.copy_from_slice(&w.to_le_bytes());
        }
        out
    }
}

/// MD5 of a file, read in 1 MiB chunks (as `plums_model::hash` does).
pub fn md5_file(path: &Path) -> io::Result<[u8; 16]> {
    let mut file = File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut h = Md5::new();
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        h.update(&buf[..n]);
    }
    Ok(h.finalize())
}
