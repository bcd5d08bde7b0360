fn main() {
    eprintln!("gridx-server: not built yet (issue 3)");
    std::process::exit(2)
}
