//! One connection: framer + session over a stream.
