//! The `tether` binary: everything lives in the library; see `cli::main`.

fn main() {
    std::process::exit(tether::cli::main(std::env::args_os().skip(1).collect()));
}
