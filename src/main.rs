use clap::Parser;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(log_filter(std::env::var("CHARTWIRE_LOG").ok()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    chartwire::app::install_crypto_provider();
    let cli = chartwire::cli::Cli::parse();
    match chartwire::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `CHARTWIRE_LOG=debug` (a bare level) sets chartwire's own level; the
/// libraries underneath (HTTP client and server, TLS) stay at `warn`, since
/// at debug level they log URLs and headers. A full filter (`a=b,c`) is
/// taken as written, for those who need the libraries' output.
fn log_filter(setting: Option<String>) -> EnvFilter {
    let setting = setting.unwrap_or_else(|| "info".to_owned());
    let directive = if setting.contains('=') || setting.contains(',') {
        setting
    } else {
        format!("warn,chartwire={setting}")
    };
    EnvFilter::try_new(&directive).unwrap_or_else(|_| EnvFilter::new("warn,chartwire=info"))
}

/// mimalloc: under many threads glibc's allocator was a sixth of the CPU
/// profile of the webhook benchmark.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
