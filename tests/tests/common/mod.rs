//! Helpers shared by the end-to-end tests (`mod common;` in each): not every test uses every
//! helper.
#![allow(dead_code)]

pub mod net;
pub mod sock;
