//! `lab-echo`: the echo server and client of labs 2 and 4, the two chapters that use them,
//! and the benchmark. The work is in the library; this file only parses the command line
//! and turns errors into one clear line and a non-zero exit code.

use std::io;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use lab_echo::Error;
use lab_echo::bench::BenchOptions;
use lab_echo::echo::{self, EchoServer};
use lab_kit::narrate::{Format, Narrator};
use lab_kit::probe::Probe;

const EXAMPLES: &str = "\
Examples:
  lab-echo server                          # listen on 127.0.0.1:2000
  lab-echo server --listen 127.0.0.1:0     # let the kernel choose the port
  printf 'hello\\nworld\\n' | lab-echo client --connect 127.0.0.1:2000
  lab-echo localhost                       # question 2: what is localhost?
  lab-echo calls --json                    # question 4, one JSON object per line
  sudo lab-echo calls --pcap caps          # its packets too, in caps/socket_calls.pcap
  lab-echo bench --bytes 104857600         # latency, throughput, Nagle";

/// An echo server and client, and the experiments of labs 2 (localhost) and 4 (socket calls).
#[derive(Debug, Parser)]
#[command(name = "lab-echo", version, after_help = EXAMPLES)]
struct Cli {
    /// Print one JSON object per experiment per line instead of the narration.
    #[arg(long, global = true)]
    json: bool,
    #[command(flatten)]
    capture: lab_capture::CaptureArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Echo every byte back to each client; one thread per client, at most --max-clients.
    ///
    /// The first line printed is `listening on ADDR`, once the socket is listening.
    Server {
        /// The address to listen on (use 127.0.0.1:0 to let the kernel choose the port).
        #[arg(long, default_value = echo::DEFAULT_LISTEN, value_name = "ADDR")]
        listen: String,
        /// How many clients are served at once; one more gets a "busy" line and is closed.
        #[arg(long, default_value_t = echo::DEFAULT_MAX_CLIENTS)]
        max_clients: usize,
    },
    /// Send standard input line by line, print the echoes; exit 0 once all came back.
    Client {
        /// The server's address, HOST:PORT.
        #[arg(long, default_value = echo::DEFAULT_CONNECT, value_name = "ADDR")]
        connect: String,
    },
    /// Question 2: What is localhost, and how is it used to develop networked programs?
    Localhost,
    /// Question 4: What do bind, listen, accept, connect, send and recv really do?
    Calls,
    /// Round-trip latency, bulk throughput and the Nagle lesson, side by side with peers.
    Bench {
        /// Measured round trips per server.
        #[arg(long, default_value_t = 20_000)]
        round_trips: usize,
        /// Bytes sent (and echoed back) in the bulk test.
        #[arg(long, default_value_t = 1 << 30)]
        bytes: u64,
        /// Round trips for each side of the Nagle lesson.
        #[arg(long, default_value_t = 20)]
        nagle_round_trips: usize,
        /// Seconds iperf3 runs for (0 to leave iperf3 out).
        #[arg(long, default_value_t = 3)]
        iperf3_seconds: u32,
        /// Leave the Python echo server out.
        #[arg(long)]
        no_python: bool,
    },
}

fn main() -> ExitCode {
    lab_kit::probe::dispatch(lab_echo::PROBES);
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // `lab-echo calls | head`: the reader left; nothing more to say to anyone.
        Err(error) if lab_kit::narrate::is_closed_output(&error) => ExitCode::FAILURE,
        Err(error) => {
            match error.hint() {
                Some(hint) => eprintln!("lab-echo: {error}; {hint}"),
                None => eprintln!("lab-echo: {error}"),
            }
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), Error> {
    let format = Format::from_json_flag(cli.json);
    match cli.command {
        Command::Server {
            listen,
            max_clients,
        } => {
            let server = EchoServer::bind(&listen, max_clients)?;
            // The first line, printed only once listen() has returned: scripts and tests
            // wait for it instead of sleeping.
            println!(
                "{}{}",
                lab_kit::ready::LISTENING_PREFIX,
                server.local_addr()?
            );
            // One line per event; a closed stdout must not stop the server.
            server.serve(std::sync::Arc::new(|event| {
                use std::io::Write;
                let _ = writeln!(io::stdout().lock(), "{event}");
            }))
        }
        Command::Client { connect } => echo::run_client(
            &connect,
            io::BufReader::new(io::stdin()),
            io::stdout().lock(),
        )
        .map(|_| ()),
        Command::Localhost => {
            let probe = Probe::current().map_err(Error::socket("current_exe"))?;
            let tap = cli
                .capture
                .wiretap()
                .map_err(|e| Error::Unexpected(e.to_string()))?;
            lab_echo::localhost_chapter(&mut Narrator::stdout(format), &probe, &tap)
        }
        Command::Calls => {
            let probe = Probe::current().map_err(Error::socket("current_exe"))?;
            let tap = cli
                .capture
                .wiretap()
                .map_err(|e| Error::Unexpected(e.to_string()))?;
            lab_echo::calls_chapter(&mut Narrator::stdout(format), &probe, &tap)
        }
        Command::Bench {
            round_trips,
            bytes,
            nagle_round_trips,
            iperf3_seconds,
            no_python,
        } => {
            let options = BenchOptions {
                round_trips,
                bulk_bytes: bytes,
                nagle_round_trips,
                python: !no_python,
                iperf3_seconds,
            };
            let report = lab_echo::bench::run(&options)?;
            lab_echo::bench::narrate(&report, &mut Narrator::stdout(format))?;
            Ok(())
        }
    }
}
