//! Test driver of the Rust wire code against the Python side (tests/test_rust.py), with the same
//! interface and output as runtime_c/wire/wire_check.c:
//!   wire_check open KEYS MODEL_ID VERSION SEQ FILE                open a sealed answer: "ok N" and
//!                                                                 one line of values per output, or "error CODE"
//!   wire_check seal KEYS MODEL_ID VERSION SEQ FILE SHAPE SCALE ZP  print the sealed request as hex
//!                                                                 (telemetry: latency 7 us, arena 8 bytes)

mod common;

use std::process::ExitCode;

use tinysplit_rt::wire::{self, Peer, Telemetry, WireTensor};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 7 {
        return ExitCode::from(2);
    }
    let Ok(keys) = common::read_keys(&args[2]) else {
        return ExitCode::from(2);
    };
    let peer = Peer {
        device_id: &keys.device_id,
        key_up: &keys.key_up,
        key_down: &keys.key_down,
        iv: &keys.iv,
        model_id: &args[3],
        model_version: args[4].parse().unwrap_or(0),
    };
    let seq: u64 = args[5].parse().unwrap_or(u64::MAX);
    let Ok(mut data) = std::fs::read(&args[6]) else {
        return ExitCode::from(2);
    };
    match (args[1].as_str(), args.len()) {
        ("open", _) => match wire::open_answer(&peer, seq, &mut data) {
            Ok(answer) => {
                println!("ok {}", answer.outputs().len());
                for o in answer.outputs() {
                    let line: Vec<String> = o.values().map(|v| format!("{v:?}")).collect();
                    println!("{} ", line.join(" "));
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                println!("error {}", code(e));
                ExitCode::from(1)
            }
        },
        ("seal", 10) => {
            let shape: Vec<u32> = args[7].split('x').map(|d| d.parse().unwrap_or(0)).collect();
            let values: Vec<i8> = data.iter().map(|&b| b as i8).collect();
            let tensor = WireTensor {
                data: &values,
                shape: &shape,
                scale: args[8].parse().unwrap_or(0.0),
                zero_point: args[9].parse().unwrap_or(1000),
            };
            let telemetry = Telemetry {
                latency_us: 7,
                arena_bytes: 8,
            };
            let mut out = vec![0u8; 65536 + 256];
            match wire::seal_request(&peer, seq, &[tensor], &telemetry, &mut out) {
                Ok(n) => {
                    println!(
                        "{}",
                        out[..n]
                            .iter()
                            .map(|b| format!("{b:02x}"))
                            .collect::<String>()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    println!("error {}", code(e));
                    ExitCode::from(1)
                }
            }
        }
        _ => ExitCode::from(2),
    }
}

fn code(e: tinysplit_rt::wire::WireError) -> i32 {
    use tinysplit_rt::wire::WireError::*;
    match e {
        Arg => -1,
        Space => -2,
        Malformed => -3,
        Auth => -4,
    }
}
