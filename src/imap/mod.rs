//! Sans-IO IMAP protocol core: framing (lines and literals, with limits enforced before
//! allocation), the command grammar, response encoding, and modified UTF-7.
//!
//! Nothing in here touches a socket or the filesystem.
//!
//! RFCs: 3501 (IMAP4rev1), 9051 (IMAP4rev2), 7888 (LITERAL+/-), 4959 (SASL-IR), 2177 (IDLE),
//! 4315 (UIDPLUS), 6851 (MOVE), 5258/5819 (LIST-EXTENDED/STATUS), 4731/5182 (ESEARCH/SEARCHRES),
//! 5256/5957/5267 (SORT, THREAD, SORT=DISPLAY, ESORT), 7162 (CONDSTORE/QRESYNC), 3516 (BINARY), 6855 (UTF8=ACCEPT: the APPEND `UTF8` form),
//! 2152 §5.1 / 3501 §5.1.3 (modified UTF-7).

pub mod encode;
pub mod framing;
pub mod parse;
pub mod types;
pub mod url;
pub mod utf7;

pub use types::*;
