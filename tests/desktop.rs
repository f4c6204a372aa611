//! Desktop smoke test under Xvfb: the built desktop binary starts with a temp data dir and port, `/health`
//! answers, a window titled Switchboard exists and is not blank on a screenshot, and SIGTERM ends the app with
//! exit code 0. Needs xvfb, xauth, dbus-x11, xdotool and imagemagick (the test command installs them).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_switchboard-desktop");

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn until<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// A plain HTTP request on loopback; returns the body of a 2xx answer.
fn request(port: u16, method: &str, path: &str, body: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to the hub");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 2"), "{out}");
    out.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default()
}

fn get(port: u16, path: &str) -> String {
    request(port, "GET", path, "")
}

/// An Xvfb display with its own D-Bus session, torn down on drop.
struct XSession {
    display: String,
    bus: String,
    _xvfb: Killed,
    dbus_pid: Option<String>,
}

impl Drop for XSession {
    fn drop(&mut self) {
        if let Some(p) = &self.dbus_pid {
            let _ = Command::new("kill").arg(p).status();
        }
    }
}

/// An Xvfb server on a display of its own. Tests run side by side, so two may pick the same number: the second
/// server then exits at once (the display is taken), and another number is tried. Checking only that the display
/// answers would let a test borrow another test's server, and lose it when that test ends.
fn xvfb() -> (String, Killed) {
    for _ in 0..20 {
        let display = format!(":{}", 90 + free_port() % 400);
        let mut server = Killed(
            Command::new("Xvfb")
                .args([
                    display.as_str(),
                    "-screen",
                    "0",
                    "1400x900x24",
                    "-nolisten",
                    "tcp",
                ])
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        let ours = loop {
            if server.0.try_wait().unwrap().is_some() {
                break false;
            }
            if output(Command::new("xdpyinfo").args(["-display", &display])).is_some() {
                // Answering, and still ours: a server that lost the race exits right after starting.
                std::thread::sleep(Duration::from_millis(100));
                break server.0.try_wait().unwrap().is_none();
            }
            assert!(Instant::now() < deadline, "Xvfb {display} did not start");
            std::thread::sleep(Duration::from_millis(50));
        };
        if ours {
            return (display, server);
        }
    }
    panic!("no free X display after 20 tries");
}

fn x_session() -> XSession {
    for tool in ["Xvfb", "dbus-launch", "xdotool", "import", "convert"] {
        assert!(
            output(Command::new("sh").args(["-c", &format!("command -v {tool}")])).is_some(),
            "{tool} missing: run scripts/test.sh"
        );
    }
    let (display, xvfb) = xvfb();
    let dbus = output(
        Command::new("dbus-launch")
            .args(["--sh-syntax"])
            .env("DISPLAY", &display),
    )
    .expect("dbus-launch");
    let bus = dbus
        .lines()
        .find_map(|l| l.strip_prefix("DBUS_SESSION_BUS_ADDRESS='"))
        .and_then(|l| l.split('\'').next())
        .expect("bus address")
        .to_owned();
    let dbus_pid = dbus
        .lines()
        .find_map(|l| l.strip_prefix("DBUS_SESSION_BUS_PID="))
        .map(|p| p.trim_end_matches(';').to_owned());
    XSession {
        display,
        bus,
        _xvfb: xvfb,
        dbus_pid,
    }
}

fn desktop(x: &XSession, port: u16, dir: &std::path::Path) -> Killed {
    Killed(
        Command::new(BIN)
            .args(["--port", &port.to_string(), "--data-dir"])
            .arg(dir)
            .env("DISPLAY", &x.display)
            .env("DBUS_SESSION_BUS_ADDRESS", &x.bus)
            .env("WEBKIT_DISABLE_DMABUF_RENDERER", "1")
            .env("WEBKIT_DISABLE_COMPOSITING_MODE", "1")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn the desktop app"),
    )
}

fn find_window(x: &XSession) -> String {
    until(
        "a window titled Switchboard",
        Duration::from_secs(30),
        || {
            output(
                Command::new("xdotool")
                    .args(["search", "--onlyvisible", "--name", "^Switchboard$"])
                    .env("DISPLAY", &x.display),
            )
            .and_then(|ids| ids.lines().next().map(str::to_owned))
        },
    )
}

fn window_clients(port: u16) -> usize {
    get(port, "/api/clients")
        .matches("\"id\":\"window-")
        .count()
}

#[test]
fn desktop_app_under_xvfb() {
    let x = x_session();
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut app = desktop(&x, port, tmp.path());
    let mut line = String::new();
    BufReader::new(app.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(
        line.trim(),
        format!("switchboard listening on http://127.0.0.1:{port}")
    );

    let health = get(port, "/health");
    assert!(health.contains("\"status\":\"ok\""), "{health}");

    let window = find_window(&x);
    // A little traffic, so the shot shows the log at work.
    request(
        port,
        "POST",
        "/api/agents",
        r#"{"name":"planner","model":"gpt-5","tags":["demo"]}"#,
    );
    request(
        port,
        "POST",
        "/api/events",
        r#"{"channel":"project:42","event":"build.done","data":{"ok":true,"ms":5120}}"#,
    );
    request(
        port,
        "POST",
        "/api/dev/webhook",
        r#"{"event_type":"deploy.finished","data":{"env":"staging"}}"#,
    );
    request(
        port,
        "POST",
        "/api/events",
        r#"{"channel":"global","event":"notice","data":{"text":"hello from the desktop smoke test"}}"#,
    );
    // Give the webview time to load the hub's page, then take the shot until it shows more than a blank fill.
    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("desktop");
    std::fs::create_dir_all(&shots).unwrap();
    let shot = shots.join("window.png");
    let colours = until("a non-blank screenshot", Duration::from_secs(30), || {
        output(
            Command::new("import")
                .args(["-window", &window])
                .arg(&shot)
                .env("DISPLAY", &x.display),
        )?;
        let n: u32 = output(
            Command::new("convert")
                .arg(&shot)
                .args(["-format", "%k", "info:"]),
        )?
        .parse()
        .ok()?;
        (n > 400).then_some(n)
    });
    println!("screenshot {} ({colours} colours)", shot.display());

    let pid = app.0.id();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    let status = until(
        "the app to exit after SIGTERM",
        Duration::from_secs(20),
        || app.0.try_wait().unwrap(),
    );
    assert_eq!(status.code(), Some(0), "exit status after SIGTERM");
}

#[test]
fn a_second_app_on_a_taken_port_attaches_to_that_hub() {
    let x = x_session();
    let port = free_port();
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut first = desktop(&x, port, a.path());
    let mut line = String::new();
    BufReader::new(first.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("switchboard listening on"), "{line}");
    until(
        "the first window to connect",
        Duration::from_secs(30),
        || (window_clients(port) == 1).then_some(()),
    );
    // Another D-Bus session, so the single-instance guard does not simply forward to the first app.
    let y = x_session();
    let mut second = desktop(&y, port, b.path());
    until(
        "the second window to connect to the first app's hub",
        Duration::from_secs(30),
        || (window_clients(port) == 2).then_some(()),
    );
    assert!(
        second.0.try_wait().unwrap().is_none(),
        "the attached app keeps running"
    );
    for app in [&mut second, &mut first] {
        assert!(
            Command::new("kill")
                .args(["-TERM", &app.0.id().to_string()])
                .status()
                .unwrap()
                .success()
        );
        let status = until("exit after SIGTERM", Duration::from_secs(20), || {
            app.0.try_wait().unwrap()
        });
        assert_eq!(status.code(), Some(0));
    }
}

/// The README's run command, `scripts/run.sh`, exactly as written; the port and data dir come from their env twins.
/// It may have to build first (the test command builds it beforehand), so its first line can take a while.
fn run_command(port: u16, dir: &std::path::Path, display: Option<&XSession>) -> Killed {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/run.sh");
    let mut cmd = Command::new(script);
    cmd.env("SWITCHBOARD_PORT", port.to_string())
        .env("SWITCHBOARD_DATA_DIR", dir)
        .env("RUST_LOG", "warn")
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if let Some(x) = display {
        cmd.env("DISPLAY", &x.display)
            .env("DBUS_SESSION_BUS_ADDRESS", &x.bus)
            .env("WEBKIT_DISABLE_DMABUF_RENDERER", "1")
            .env("WEBKIT_DISABLE_COMPOSITING_MODE", "1");
    }
    Killed(cmd.spawn().expect("run scripts/run.sh"))
}

/// The lines the run command prints, read on a thread so a build that takes long cannot wedge the test.
fn lines(app: &mut Killed) -> std::sync::mpsc::Receiver<String> {
    let out = app.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// How long the run command may take to print its first line: a release build from scratch on two cores.
const FIRST_BUILD: Duration = Duration::from_secs(40 * 60);

fn stops_cleanly_on_sigterm(app: &mut Killed) {
    let pid = app.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = until("exit after SIGTERM", Duration::from_secs(20), || {
        app.0.try_wait().unwrap()
    });
    assert_eq!(status.code(), Some(0), "exit status after SIGTERM");
}

#[test]
fn the_run_command_brings_up_the_tray_app_under_xvfb() {
    let x = x_session();
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut app = run_command(port, tmp.path(), Some(&x));
    let first = lines(&mut app)
        .recv_timeout(FIRST_BUILD)
        .expect("the run command printed nothing");
    assert_eq!(
        first,
        format!("switchboard listening on http://127.0.0.1:{port}")
    );
    assert!(get(port, "/health").contains("\"status\":\"ok\""));
    // The tray app's window comes up and connects to its hub.
    find_window(&x);
    until("the window to connect", Duration::from_secs(30), || {
        (window_clients(port) == 1).then_some(())
    });
    stops_cleanly_on_sigterm(&mut app);
}

#[test]
fn the_run_command_without_a_display_starts_the_headless_hub() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut app = run_command(port, tmp.path(), None);
    let out = lines(&mut app);
    let url = format!("http://127.0.0.1:{port}");
    let first = out
        .recv_timeout(FIRST_BUILD)
        .expect("the run command printed nothing");
    assert_eq!(first, format!("switchboard listening on {url}"));
    let window = out
        .recv_timeout(Duration::from_secs(10))
        .expect("no second line");
    assert!(
        window.contains(&format!("{url}/")),
        "it says where the window is: {window}"
    );
    assert!(get(port, "/health").contains("\"status\":\"ok\""));
    // The window is the page at that URL.
    assert!(
        get(port, "/").contains("<title>Switchboard"),
        "the window's page"
    );
    stops_cleanly_on_sigterm(&mut app);
}
