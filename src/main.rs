use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = providercard::cli::Cli::parse();
    providercard::cli::run(cli)
}
