fn main() -> std::process::ExitCode {
    gridx_tui::cli::main()
}
