"""Package marker: runtime_rust ships as package data (the tinysplit-rt crate the Rust backend copies)."""
