//! uid2d
