//! webrepl-mount: a MicroPython board's filesystem over WebREPL.
//!
//! Layers, each depending only on those above it in this list:
//! `protocol` (sans-I/O) → `session` (the one task that owns the socket) →
//! `board` (typed operations and the MicroPython snippets) → `cache` →
//! `fs` / `terminal` / `web` → `mount` → `connection` (clap-free set-up)
//! → `commands`, `copy` → `mip` → `cli` (clap only). tests/layers.rs holds the
//! full order and fails on a module that names one above it.

pub mod board;
pub mod boards;
pub mod cache;
pub mod cli;
pub mod commands;
pub mod connection;
pub mod copy;
pub mod error;
pub mod fs;
pub mod mip;
pub mod mount;
pub mod options;
pub mod private;
pub mod protocol;
pub mod remote;
pub mod session;
pub mod share;
pub mod terminal;
pub mod web;
