use clap::Parser;

// The bulk import and index extraction allocate and free small JSON values at a high rate;
// glibc's allocator spent about a third of the import's time (perf), mimalloc far less.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = providercard::cli::Cli::parse();
    providercard::cli::run(cli)
}
