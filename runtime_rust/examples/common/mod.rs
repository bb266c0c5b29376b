//! Shared by the host examples: the device keys file (`TS_DEVICE_ID=...`, hex keys), as written by
//! the server's keystore (`DeviceKeys.env_lines`).

use std::fs;

pub struct Keys {
    pub device_id: Vec<u8>,
    pub key_up: [u8; 32],
    pub key_down: [u8; 32],
    pub iv: [u8; 12],
}

fn hex<const N: usize>(s: &str) -> Result<[u8; N], String> {
    if s.len() != 2 * N {
        return Err(format!("expected {} hex digits, got {}", 2 * N, s.len()));
    }
    let mut out = [0u8; N];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|e| e.to_string())?;
    }
    Ok(out)
}

pub fn read_keys(path: &str) -> Result<Keys, String> {
    let text = fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let mut keys = Keys {
        device_id: Vec::new(),
        key_up: [0; 32],
        key_down: [0; 32],
        iv: [0; 12],
    };
    for line in text.lines() {
        match line.split_once('=') {
            Some(("TS_DEVICE_ID", v)) => keys.device_id = v.as_bytes().to_vec(),
            Some(("TS_KEY_UP", v)) => keys.key_up = hex(v)?,
            Some(("TS_KEY_DOWN", v)) => keys.key_down = hex(v)?,
            Some(("TS_IV", v)) => keys.iv = hex(v)?,
            _ => {}
        }
    }
    Ok(keys)
}
