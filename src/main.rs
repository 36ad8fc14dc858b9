//! The `fixer` binary: argument parsing and output around the library.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
