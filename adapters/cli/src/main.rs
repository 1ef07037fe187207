//! The `gcbulk` command.

fn main() {
    #[expect(clippy::print_stderr, reason = "placeholder until the command exists")]
    {
        eprintln!("gcbulk: the command is coming; run `cargo test --workspace` for now");
    }
    std::process::exit(2);
}
