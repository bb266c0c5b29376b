//! A host device for interop tests: seals one int8 tensor, POSTs it to the tinysplit server over
//! CoAP (UDP, one datagram: RFC 7252 CON POST /ts/infer, Content-Format 16), opens the sealed
//! answer and prints it.
//!
//!   device --server HOST:PORT --keys FILE --model-id ID --model-version V --seq N
//!          --tensor FILE:SHAPE:SCALE:ZP          (SHAPE as 1x2x4; FILE holds the int8 values)
//!
//! Prints `output I shape AxB: v v ...` per output and `top1 K` (of output 0).

mod common;

use std::net::UdpSocket;
use std::process::ExitCode;
use std::time::Duration;

use tinysplit_rt::wire::{self, Peer, Telemetry, WireTensor, CONTENT_FORMAT};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("device: {e}");
            ExitCode::FAILURE
        }
    }
}

fn arg<'a>(args: &'a [String], name: &str) -> Result<&'a str, String> {
    let i = args
        .iter()
        .position(|a| a == name)
        .ok_or(format!("{name} is missing"))?;
    args.get(i + 1)
        .map(String::as_str)
        .ok_or(format!("{name} needs a value"))
}

/// CON POST /ts/infer with Content-Format and payload (RFC 7252 §3).
fn coap_post(mid: u16, token: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut m = vec![0x40 | token.len() as u8, 0x02];
    m.extend(mid.to_be_bytes());
    m.extend(token);
    m.extend([0xb2, b't', b's', 0x05, b'i', b'n', b'f', b'e', b'r']); // Uri-Path ts, infer
    m.extend([0x11, CONTENT_FORMAT as u8]); // Content-Format (option 12)
    m.push(0xff);
    m.extend(payload);
    m
}

/// A received CoAP message: type, code, message id, token, payload (options skipped).
struct Message<'a> {
    kind: u8,
    code: u8,
    mid: u16,
    token: &'a [u8],
    payload: &'a [u8],
}

fn coap_parse(d: &[u8]) -> Result<Message<'_>, String> {
    let bad = || "malformed CoAP datagram".to_string();
    let tkl = usize::from(*d.first().ok_or_else(bad)? & 0x0f);
    let (kind, code) = ((d[0] >> 4) & 3, *d.get(1).ok_or_else(bad)?);
    let mid = u16::from_be_bytes([*d.get(2).ok_or_else(bad)?, *d.get(3).ok_or_else(bad)?]);
    let token = d.get(4..4 + tkl).ok_or_else(bad)?;
    let mut i = 4 + tkl;
    while i < d.len() && d[i] != 0xff {
        let (delta, len) = (d[i] >> 4, d[i] & 0x0f);
        i += 1;
        for nibble in [delta, len] {
            i += match nibble {
                13 => 1,
                14 => 2,
                _ => 0,
            };
        }
        let length = match len {
            13 => usize::from(*d.get(i - 1).ok_or_else(bad)?) + 13,
            14 => usize::from(u16::from_be_bytes([d[i - 2], d[i - 1]])) + 269,
            n => usize::from(n),
        };
        i += length;
    }
    let payload = if i < d.len() { &d[i + 1..] } else { &[][..] };
    Ok(Message {
        kind,
        code,
        mid,
        token,
        payload,
    })
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let keys = common::read_keys(arg(&args, "--keys")?)?;
    let model_id = arg(&args, "--model-id")?;
    let peer = Peer {
        device_id: &keys.device_id,
        key_up: &keys.key_up,
        key_down: &keys.key_down,
        iv: &keys.iv,
        model_id,
        model_version: arg(&args, "--model-version")?
            .parse()
            .map_err(|_| "bad --model-version")?,
    };
    let seq: u64 = arg(&args, "--seq")?.parse().map_err(|_| "bad --seq")?;
    let spec: Vec<&str> = arg(&args, "--tensor")?.split(':').collect();
    let [file, shape, scale, zp] = spec[..] else {
        return Err("--tensor FILE:SHAPE:SCALE:ZP".into());
    };
    let values: Vec<i8> = std::fs::read(file)
        .map_err(|e| format!("{file}: {e}"))?
        .iter()
        .map(|&b| b as i8)
        .collect();
    let shape: Vec<u32> = shape
        .split('x')
        .map(|d| d.parse().map_err(|_| "bad shape"))
        .collect::<Result<_, _>>()?;
    let tensor = WireTensor {
        data: &values,
        shape: &shape,
        scale: scale.parse().map_err(|_| "bad scale")?,
        zero_point: zp.parse().map_err(|_| "bad zero point")?,
    };
    let telemetry = Telemetry {
        latency_us: 1234,
        arena_bytes: 4096,
    };
    let mut request = vec![
        0u8;
        wire::request_size(&peer, seq, &[tensor], &telemetry)
            .map_err(|e| format!("{e:?}"))?
    ];
    wire::seal_request(&peer, seq, &[tensor], &telemetry, &mut request)
        .map_err(|e| format!("seal: {e:?}"))?;

    let socket = UdpSocket::bind(if arg(&args, "--server")?.starts_with('[') {
        "[::]:0"
    } else {
        "0.0.0.0:0"
    })
    .map_err(|e| e.to_string())?;
    socket
        .connect(arg(&args, "--server")?)
        .map_err(|e| e.to_string())?;
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    let (mid, token) = ((seq as u16) ^ 0x5a5a, (seq as u32).to_be_bytes());
    socket
        .send(&coap_post(mid, &token, &request))
        .map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 65536];
    let mut answer = loop {
        let n = socket
            .recv(&mut buf)
            .map_err(|e| format!("no answer: {e}"))?;
        let Message {
            kind,
            code,
            mid: their_mid,
            token: their_token,
            payload,
        } = coap_parse(&buf[..n])?;
        if kind == 0 || kind == 1 {
            // a separate response (CON or NON): acknowledge a CON
            if kind == 0 {
                socket
                    .send(&[0x60, 0x00, (their_mid >> 8) as u8, their_mid as u8])
                    .map_err(|e| e.to_string())?;
            }
        } else if code == 0 {
            continue; // empty ACK: the response follows separately
        }
        if their_token != token {
            continue;
        }
        if code != 0x44 {
            return Err(format!(
                "server answered {}.{:02}: {}",
                code >> 5,
                code & 0x1f,
                String::from_utf8_lossy(payload)
            ));
        }
        break payload.to_vec();
    };
    let answer = wire::open_answer(&peer, seq, &mut answer).map_err(|e| format!("open: {e:?}"))?;
    for (i, o) in answer.outputs().iter().enumerate() {
        let shape: Vec<String> = o.shape().iter().map(u32::to_string).collect();
        let values: Vec<String> = o.values().map(|v| format!("{v:?}")).collect();
        println!("output {i} shape {}: {}", shape.join("x"), values.join(" "));
    }
    let first = answer.outputs().first().ok_or("no outputs")?;
    let top1 =
        first.values().enumerate().fold(
            (0, f32::NEG_INFINITY),
            |b, (i, v)| if v > b.1 { (i, v) } else { b },
        );
    println!("top1 {}", top1.0);
    Ok(())
}
