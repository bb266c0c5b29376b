//! The tinysplit wire format, device side: seal the cut tensors for the server, open its answer
//! (feature `wire`). The specification is `server/wire.py`; this module writes the same bytes as
//! the C device (`runtime_c/wire/wire.c`). In short:
//!
//! ```text
//! request = COSE_Encrypt0 [h'A1011818' (alg 24), {4: kid, 6: partial IV = seq, -65537: model
//!           version}, ciphertext] with plaintext {1: model id, 2: model version, 3: seq,
//!           4: [[shape, scale (float32), zero point, int8 data]...], 5: {1: latency_us, 2: arena_bytes}}
//! answer  = COSE_Encrypt0 [h'A1011818', {}, ciphertext] (optionally tag 16) with plaintext
//!           {3: seq, 6: [[shape, float32 little-endian data]...]}
//! nonce   = iv XOR (0^32 || seq as 64-bit big-endian); key_up seals requests, key_down answers;
//! AAD     = Enc_structure ["Encrypt0", h'A1011818', cbor(["tinysplit/1", model id, version])].
//! ```
//!
//! No heap and no scratch: the plaintext is encoded straight into the output buffer and sealed in
//! place (RustCrypto's ChaCha20-Poly1305), and the answer is opened in place in the receive buffer
//! (the decoded outputs borrow it). Every read of the untrusted answer is bounds-checked by
//! `minicbor`'s decoder; anything but the exact expected structure is [`WireError::Malformed`].
//!
//! The caller must never reuse a sequence number with the same key (the C runtime's `ts_seq`
//! persists a reservation across reboots; a Rust device needs the same).

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce, Tag};
use minicbor::encode::write::{Cursor, Write};
use minicbor::{Decoder, Encoder};

/// Bytes of the ChaCha20-Poly1305 tag.
pub const TAG_BYTES: usize = 16;
/// Most dimensions of a tensor on the wire.
pub const MAX_RANK: usize = 8;
/// Most tensors in a request.
pub const MAX_TENSORS: usize = 8;
/// Most outputs in an answer.
pub const MAX_OUTPUTS: usize = 8;
/// Longest device id (COSE kid), bytes.
pub const MAX_KID: usize = 32;
/// Longest model id, bytes.
pub const MAX_MODEL_ID: usize = 64;
/// Largest sequence number (a 5-byte partial IV).
pub const MAX_SEQ: u64 = 0xFF_FFFF_FFFF;
/// CoAP Content-Format of both messages: application/cose; cose-type="cose-encrypt0".
pub const CONTENT_FORMAT: u16 = 16;

const PROTECTED: [u8; 4] = [0xa1, 0x01, 0x18, 0x18]; // {1: 24}
const AAD_CONTEXT: &str = "tinysplit/1";
const ENC_CONTEXT: &str = "Encrypt0";
const HDR_KID: u8 = 4;
const HDR_PIV: u8 = 6;
const HDR_MODEL_VERSION: i64 = -65537;
const AAD_MAX: usize = 160;

/// Why sealing or opening failed (the C runtime's `TS_WIRE_ERR_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireError {
    /// A bad argument: ids too long, too many tensors, a bad shape, seq out of range, ...
    Arg,
    /// The output buffer is too small.
    Space,
    /// The answer is not of this format.
    Malformed,
    /// The answer does not authenticate (tampered, another key, model or request).
    Auth,
}

/// One device talking to one server about one model.
#[derive(Clone, Copy, Debug)]
pub struct Peer<'a> {
    /// The COSE kid, 1..=32 bytes.
    pub device_id: &'a [u8],
    /// Seals requests (device -> server).
    pub key_up: &'a [u8; 32],
    /// Opens answers (server -> device).
    pub key_down: &'a [u8; 32],
    /// Base of the nonces.
    pub iv: &'a [u8; 12],
    /// 1..=64 bytes.
    pub model_id: &'a str,
    /// The model version the server must hold.
    pub model_version: u32,
}

/// One int8 tensor at the cut.
#[derive(Clone, Copy, Debug)]
pub struct WireTensor<'a> {
    /// `prod(shape)` values, row-major.
    pub data: &'a [i8],
    /// 1..=8 dimensions, each in `1..=2^24`.
    pub shape: &'a [u32],
    /// `real = scale * (q - zero_point)`.
    pub scale: f32,
    /// In `[-128, 127]`.
    pub zero_point: i32,
}

/// What the device reports with each request.
#[derive(Clone, Copy, Debug, Default)]
pub struct Telemetry {
    /// Head inference time on the device.
    pub latency_us: u32,
    /// Arena the head used.
    pub arena_bytes: u32,
}

/// One float32 output of the answer; its values live in the message buffer.
#[derive(Clone, Copy, Debug, Default)]
pub struct Output<'m> {
    rank: usize,
    shape: [u32; MAX_RANK],
    data: &'m [u8],
}

impl<'m> Output<'m> {
    /// The output's shape.
    pub fn shape(&self) -> &[u32] {
        &self.shape[..self.rank]
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.data.len() / 4
    }

    /// Whether there are no values (never, for a decoded answer).
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The values, decoded from little-endian float32.
    pub fn values(&self) -> impl Iterator<Item = f32> + 'm {
        self.data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// The server's answer to request `seq`.
#[derive(Clone, Copy, Debug)]
pub struct Answer<'m> {
    /// The request's sequence number.
    pub seq: u64,
    count: usize,
    outputs: [Output<'m>; MAX_OUTPUTS],
}

impl<'m> Answer<'m> {
    /// The outputs, in the tail model's order.
    pub fn outputs(&self) -> &[Output<'m>] {
        &self.outputs[..self.count]
    }
}

/// A `minicbor` writer that only counts bytes.
struct Counter(usize);

impl Write for Counter {
    type Error = core::convert::Infallible;
    fn write_all(&mut self, buf: &[u8]) -> Result<(), Self::Error> {
        self.0 += buf.len();
        Ok(())
    }
}

fn peer_ok(peer: &Peer<'_>) -> bool {
    (1..=MAX_KID).contains(&peer.device_id.len())
        && (1..=MAX_MODEL_ID).contains(&peer.model_id.len())
}

fn tensors_ok(tensors: &[WireTensor<'_>]) -> bool {
    (1..=MAX_TENSORS).contains(&tensors.len())
        && tensors.iter().all(|t| {
            (1..=MAX_RANK).contains(&t.shape.len())
                && t.shape.iter().all(|&d| (1..=1 << 24).contains(&d))
                && (-128..=127).contains(&t.zero_point)
                && t.scale > 0.0
                && t.shape
                    .iter()
                    .try_fold(1usize, |n, &d| n.checked_mul(d as usize))
                    == Some(t.data.len())
        })
}

fn nonce(iv: &[u8; 12], seq: u64) -> Nonce {
    let mut n = *iv;
    for (b, s) in n[4..].iter_mut().zip(seq.to_be_bytes()) {
        *b ^= s;
    }
    n.into()
}

/// `seq` as a minimal big-endian byte string (at least one byte).
fn partial_iv(seq: u64) -> ([u8; 8], usize) {
    let bytes = seq.to_be_bytes();
    let skip = (seq.leading_zeros() as usize / 8).min(7);
    let mut out = [0u8; 8];
    out[..8 - skip].copy_from_slice(&bytes[skip..]);
    (out, 8 - skip)
}

/// The Enc_structure (the AEAD's associated data) into `buf`; its length.
fn aad(peer: &Peer<'_>, buf: &mut [u8; AAD_MAX]) -> Result<usize, WireError> {
    let mut ext = [0u8; AAD_MAX];
    let mut e = Encoder::new(Cursor::new(&mut ext[..]));
    e.array(3)
        .and_then(|e| e.str(AAD_CONTEXT))
        .and_then(|e| e.str(peer.model_id))
        .and_then(|e| e.u32(peer.model_version))
        .map_err(|_| WireError::Arg)?;
    let ext_len = e.into_writer().position();
    let mut w = Encoder::new(Cursor::new(&mut buf[..]));
    w.array(3)
        .and_then(|w| w.str(ENC_CONTEXT))
        .and_then(|w| w.bytes(&PROTECTED))
        .and_then(|w| w.bytes(&ext[..ext_len]))
        .map_err(|_| WireError::Arg)?;
    Ok(w.into_writer().position())
}

fn put_plaintext<W: Write>(
    e: &mut Encoder<W>,
    peer: &Peer<'_>,
    seq: u64,
    tensors: &[WireTensor<'_>],
    telemetry: &Telemetry,
) -> Result<(), minicbor::encode::Error<W::Error>> {
    e.map(5)?.u8(1)?.str(peer.model_id)?;
    e.u8(2)?.u32(peer.model_version)?;
    e.u8(3)?.u64(seq)?;
    e.u8(4)?.array(tensors.len() as u64)?;
    for t in tensors {
        e.array(4)?.array(t.shape.len() as u64)?;
        for &d in t.shape {
            e.u32(d)?;
        }
        e.f32(t.scale)?.i32(t.zero_point)?;
        e.bytes(bytemuck::cast_slice(t.data))?;
    }
    e.u8(5)?.map(2)?.u8(1)?.u32(telemetry.latency_us)?;
    e.u8(2)?.u32(telemetry.arena_bytes)?;
    Ok(())
}

fn put_envelope_head<W: Write>(
    e: &mut Encoder<W>,
    peer: &Peer<'_>,
    seq: u64,
    ct_len: usize,
) -> Result<(), minicbor::encode::Error<W::Error>> {
    let (piv, n) = partial_iv(seq);
    e.array(3)?.bytes(&PROTECTED)?;
    e.map(3)?.u8(HDR_KID)?.bytes(peer.device_id)?;
    e.u8(HDR_PIV)?.bytes(&piv[..n])?;
    e.i64(HDR_MODEL_VERSION)?.u32(peer.model_version)?;
    // the head of the ciphertext byte string; its contents follow
    let (h, n) = bstr_head(ct_len);
    e.writer_mut()
        .write_all(&h[..n])
        .map_err(minicbor::encode::Error::write)?;
    Ok(())
}

/// The CBOR head of a byte string of `len` bytes.
fn bstr_head(len: usize) -> ([u8; 9], usize) {
    let mut h = [0u8; 9];
    let v = len as u64;
    let n: usize = match v {
        0..=23 => {
            h[0] = 0x40 | v as u8;
            return (h, 1);
        }
        24..=0xff => 1,
        0x100..=0xffff => 2,
        0x1_0000..=0xffff_ffff => 4,
        _ => 8,
    };
    h[0] = 0x40 | [24, 25, 26, 27][n.trailing_zeros() as usize];
    h[1..=n].copy_from_slice(&v.to_be_bytes()[8 - n..]);
    (h, 1 + n)
}

fn plaintext_len(
    peer: &Peer<'_>,
    seq: u64,
    tensors: &[WireTensor<'_>],
    telemetry: &Telemetry,
) -> Result<usize, WireError> {
    let mut e = Encoder::new(Counter(0));
    put_plaintext(&mut e, peer, seq, tensors, telemetry).map_err(|_| WireError::Arg)?;
    Ok(e.into_writer().0)
}

/// Size of the sealed request for these arguments (to size the buffer).
pub fn request_size(
    peer: &Peer<'_>,
    seq: u64,
    tensors: &[WireTensor<'_>],
    telemetry: &Telemetry,
) -> Result<usize, WireError> {
    if !peer_ok(peer) || !tensors_ok(tensors) || seq > MAX_SEQ {
        return Err(WireError::Arg);
    }
    let pt_len = plaintext_len(peer, seq, tensors, telemetry)?;
    let mut head = Encoder::new(Counter(0));
    put_envelope_head(&mut head, peer, seq, pt_len + TAG_BYTES).map_err(|_| WireError::Arg)?;
    Ok(head.into_writer().0 + pt_len + TAG_BYTES)
}

/// Seals a request into `out`; returns its length.
pub fn seal_request(
    peer: &Peer<'_>,
    seq: u64,
    tensors: &[WireTensor<'_>],
    telemetry: &Telemetry,
    out: &mut [u8],
) -> Result<usize, WireError> {
    let total = request_size(peer, seq, tensors, telemetry)?;
    if total > out.len() {
        return Err(WireError::Space);
    }
    let mut aad_buf = [0u8; AAD_MAX];
    let aad_len = aad(peer, &mut aad_buf)?;
    let pt_len = plaintext_len(peer, seq, tensors, telemetry)?;
    let out = &mut out[..total];
    let head_len = total - pt_len - TAG_BYTES;
    let (head, rest) = out.split_at_mut(head_len);
    let (body, tag_out) = rest.split_at_mut(pt_len);
    let mut e = Encoder::new(Cursor::new(head));
    put_envelope_head(&mut e, peer, seq, pt_len + TAG_BYTES).map_err(|_| WireError::Space)?;
    let mut e = Encoder::new(Cursor::new(&mut *body));
    put_plaintext(&mut e, peer, seq, tensors, telemetry).map_err(|_| WireError::Space)?;
    let cipher = ChaCha20Poly1305::new(Key::from_slice(peer.key_up));
    let tag = cipher
        .encrypt_in_place_detached(&nonce(peer.iv, seq), &aad_buf[..aad_len], body)
        .map_err(|_| WireError::Space)?;
    tag_out.copy_from_slice(&tag);
    Ok(total)
}

fn malformed<T>(_: T) -> WireError {
    WireError::Malformed
}

/// A definite-length array or map header.
fn definite(n: Option<u64>) -> Result<u64, WireError> {
    n.ok_or(WireError::Malformed)
}

/// Authenticates and decodes the answer to request `seq`, in place in `msg`.
pub fn open_answer<'m>(
    peer: &Peer<'_>,
    seq: u64,
    msg: &'m mut [u8],
) -> Result<Answer<'m>, WireError> {
    if !peer_ok(peer) || seq > MAX_SEQ {
        return Err(WireError::Arg);
    }
    let (start, end) = {
        let skip = usize::from(msg.first() == Some(&0xd0)); // optional tag 16 (COSE_Encrypt0)
        let mut d = Decoder::new(&msg[skip..]);
        if definite(d.array().map_err(malformed)?)? != 3
            || d.bytes().map_err(malformed)? != PROTECTED
            || definite(d.map().map_err(malformed)?)? != 0
        {
            return Err(WireError::Malformed);
        }
        let ct_len = d.bytes().map_err(malformed)?.len();
        if ct_len < TAG_BYTES || d.position() + skip != msg.len() {
            return Err(WireError::Malformed);
        }
        (msg.len() - ct_len, msg.len())
    };
    let mut aad_buf = [0u8; AAD_MAX];
    let aad_len = aad(peer, &mut aad_buf)?;
    let (body, tag) = msg[start..end].split_at_mut(end - start - TAG_BYTES);
    let cipher = ChaCha20Poly1305::new(Key::from_slice(peer.key_down));
    cipher
        .decrypt_in_place_detached(
            &nonce(peer.iv, seq),
            &aad_buf[..aad_len],
            body,
            Tag::from_slice(tag),
        )
        .map_err(|_| WireError::Auth)?;
    let msg: &'m [u8] = msg;
    decode_answer(&msg[start..end - TAG_BYTES], seq)
}

/// Decodes an answer's plaintext (after authentication; exposed for tests and fuzzing).
pub fn decode_answer(plaintext: &[u8], seq: u64) -> Result<Answer<'_>, WireError> {
    let mut d = Decoder::new(plaintext);
    let mut answer = Answer {
        seq,
        count: 0,
        outputs: [Output::default(); MAX_OUTPUTS],
    };
    if definite(d.map().map_err(malformed)?)? != 2 {
        return Err(WireError::Malformed);
    }
    let (mut have_seq, mut have_outputs) = (false, false);
    for _ in 0..2 {
        match d.u64().map_err(malformed)? {
            3 if !have_seq => {
                if d.u64().map_err(malformed)? != seq {
                    return Err(WireError::Malformed);
                }
                have_seq = true;
            }
            6 if !have_outputs => {
                let n = definite(d.array().map_err(malformed)?)?;
                if !(1..=MAX_OUTPUTS as u64).contains(&n) {
                    return Err(WireError::Malformed);
                }
                answer.count = n as usize;
                for o in &mut answer.outputs[..n as usize] {
                    *o = decode_output(&mut d, plaintext.len())?;
                }
                have_outputs = true;
            }
            _ => return Err(WireError::Malformed),
        }
    }
    if d.position() != plaintext.len() {
        return Err(WireError::Malformed);
    }
    Ok(answer)
}

fn decode_output<'m>(d: &mut Decoder<'m>, limit: usize) -> Result<Output<'m>, WireError> {
    if definite(d.array().map_err(malformed)?)? != 2 {
        return Err(WireError::Malformed);
    }
    let rank = definite(d.array().map_err(malformed)?)?;
    if !(1..=MAX_RANK as u64).contains(&rank) {
        return Err(WireError::Malformed);
    }
    let mut out = Output {
        rank: rank as usize,
        ..Output::default()
    };
    let mut count = 1usize;
    for dim in &mut out.shape[..rank as usize] {
        let v = d.u64().map_err(malformed)?;
        if !(1..=1 << 24).contains(&v) || count > (limit / 4) / v as usize {
            return Err(WireError::Malformed); // more values than the message can hold
        }
        *dim = v as u32;
        count *= v as usize;
    }
    out.data = d.bytes().map_err(malformed)?;
    if out.data.len() != 4 * count {
        return Err(WireError::Malformed);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_UP: [u8; 32] = [1; 32];
    const KEY_DOWN: [u8; 32] = [2; 32];
    const IV: [u8; 12] = [3; 12];

    fn peer() -> Peer<'static> {
        Peer {
            device_id: b"dev1",
            key_up: &KEY_UP,
            key_down: &KEY_DOWN,
            iv: &IV,
            model_id: "synthetic",
            model_version: 1,
        }
    }

    #[test]
    fn heads_and_partial_ivs_are_minimal() {
        assert_eq!(bstr_head(5), ([0x45, 0, 0, 0, 0, 0, 0, 0, 0], 1));
        assert_eq!(&bstr_head(24).0[..2], &[0x58, 24]);
        assert_eq!(&bstr_head(300).0[..3], &[0x59, 1, 44]);
        assert_eq!(&bstr_head(70_000).0[..5], &[0x5a, 0, 1, 0x11, 0x70]);
        assert_eq!(partial_iv(0), ([0; 8], 1));
        assert_eq!(
            &partial_iv(0x1234567890).0[..5],
            &[0x12, 0x34, 0x56, 0x78, 0x90]
        );
        assert_eq!(partial_iv(0x1234567890).1, 5);
        assert_eq!(
            nonce(&[0; 12], 0x0102).as_slice(),
            &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2]
        );
    }

    #[test]
    fn seal_checks_its_arguments() {
        let data = [1i8; 8];
        let t = [WireTensor {
            data: &data,
            shape: &[1, 2, 4],
            scale: 0.05,
            zero_point: 3,
        }];
        let tm = Telemetry::default();
        let size = request_size(&peer(), 7, &t, &tm).unwrap();
        let mut buf = [0u8; 256];
        assert_eq!(seal_request(&peer(), 7, &t, &tm, &mut buf), Ok(size));
        assert_eq!(
            seal_request(&peer(), 7, &t, &tm, &mut buf[..size - 1]),
            Err(WireError::Space)
        );
        assert_eq!(
            seal_request(&peer(), MAX_SEQ + 1, &t, &tm, &mut buf),
            Err(WireError::Arg)
        );
        let bad = [WireTensor {
            shape: &[1, 2, 3],
            ..t[0]
        }];
        assert_eq!(
            seal_request(&peer(), 7, &bad, &tm, &mut buf),
            Err(WireError::Arg)
        );
        let bad = [WireTensor {
            zero_point: 128,
            ..t[0]
        }];
        assert_eq!(
            seal_request(&peer(), 7, &bad, &tm, &mut buf),
            Err(WireError::Arg)
        );
    }

    #[test]
    fn malformed_answers_are_rejected_before_decryption() {
        let p = peer();
        for msg in [
            &b""[..],
            &[0x80],
            &[0x83, 0x44, 0xa1, 0x01, 0x18, 0x18, 0xa0, 0x40],
        ] {
            let mut m = [0u8; 16];
            m[..msg.len()].copy_from_slice(msg);
            assert_eq!(
                open_answer(&p, 1, &mut m[..msg.len()]).map(|a| a.seq),
                Err(WireError::Malformed)
            );
        }
    }

    #[test]
    fn answer_plaintext_is_decoded_strictly() {
        // {3: 9, 6: [[[1, 2], h'0000803f 00000040']]}
        let good = [
            0xa2, 0x03, 0x09, 0x06, 0x81, 0x82, 0x82, 0x01, 0x02, 0x48, 0, 0, 0x80, 0x3f, 0, 0, 0,
            0x40,
        ];
        let a = decode_answer(&good, 9).unwrap();
        assert_eq!(a.outputs().len(), 1);
        assert_eq!(a.outputs()[0].shape(), &[1, 2]);
        assert!(a.outputs()[0].values().eq([1.0f32, 2.0]));
        assert_eq!(
            decode_answer(&good, 8).map(|a| a.seq),
            Err(WireError::Malformed)
        );
        assert_eq!(
            decode_answer(&good[..good.len() - 1], 9).map(|a| a.seq),
            Err(WireError::Malformed)
        );
        let mut long = [0u8; 19];
        long[..18].copy_from_slice(&good);
        assert_eq!(
            decode_answer(&long, 9).map(|a| a.seq),
            Err(WireError::Malformed)
        );
        let mut wrong_count = good;
        wrong_count[8] = 0x03; // shape [1, 3] but 2 values
        assert_eq!(
            decode_answer(&wrong_count, 9).map(|a| a.seq),
            Err(WireError::Malformed)
        );
    }
}
