fn main() {
    eprintln!("gridx-tui: not built yet (issues 4 and 5)");
    std::process::exit(2)
}
