fn main() -> std::process::ExitCode {
    gridx_server::cli::main()
}
