//! Thin entry point: parse the command line, run, turn the result into an exit code.
#![forbid(unsafe_code)]

fn main() {
    std::process::exit(pimap::cli::main());
}
