import DEETestSupport
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A `dee serve` child process with short lease, claim and block timings, its output appended to a log file, so
/// that fault tests can kill it (`kill -9`), stop it (SIGTERM) and start it again under the same consumer name.
final class EngineProcess: @unchecked Sendable {
    let executable: String
    let url: String
    let prefix: String
    let consumer: String
    let extra: [String]
    let log: URL
    private(set) var process: Process?
    private(set) var starts = 0

    init(executable: String, url: String, prefix: String, consumer: String, extra: [String] = [], log: URL) throws {
        self.executable = executable
        self.url = url
        self.prefix = prefix
        self.consumer = consumer
        self.extra = extra
        self.log = log
        try start()
    }

    deinit { killHard() }

    var isRunning: Bool { process?.isRunning ?? false }

    func start() throws {
        if !FileManager.default.fileExists(atPath: log.path) {
            FileManager.default.createFile(atPath: log.path, contents: nil)
        }
        let handle = try FileHandle(forWritingTo: log)
        handle.seekToEndOfFile()
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = [
            "serve", "--redis-url", url, "--prefix", prefix, "--consumer", consumer, "--log-level", "info",
            "--lease", "2s", "--claim-idle", "2s", "--block", "100ms",
        ] + extra
        p.standardInput = FileHandle.nullDevice
        p.standardOutput = handle
        p.standardError = handle
        try p.run()
        process = p
        starts += 1
        // Never outlives the test process, even when that one is killed.
        let watchdog = Process()
        watchdog.executableURL = URL(fileURLWithPath: "/bin/sh")
        watchdog.arguments = [
            "-c",
            """
            while kill -0 "$1" 2>/dev/null && kill -0 "$2" 2>/dev/null; do sleep 1; done
            [ "$(cat /proc/$2/comm 2>/dev/null)" = dee ] && kill -KILL "$2" 2>/dev/null
            exit 0
            """,
            "dee-test-engine-watchdog", String(ProcessInfo.processInfo.processIdentifier), String(p.processIdentifier),
        ]
        watchdog.standardInput = FileHandle.nullDevice
        watchdog.standardOutput = FileHandle.nullDevice
        watchdog.standardError = FileHandle.nullDevice
        try? watchdog.run()
    }

    func killHard() {
        guard let process, process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// SIGTERM; returns the exit status and the seconds it took, or nil when it had not exited after `grace` (then
    /// it is killed).
    @discardableResult
    func stop(grace: Double = 15) -> (status: Int32, seconds: Double)? {
        guard let process, process.isRunning else { return nil }
        waitUntilStarted()
        let started = Date()
        kill(process.processIdentifier, SIGTERM)
        let deadline = started.addingTimeInterval(grace)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning {
            killHard()
            return nil
        }
        return (process.terminationStatus, Date().timeIntervalSince(started))
    }

    /// Waits (at most 10 s) until this start logged "engine started": its service group runs and traps SIGTERM.
    /// A SIGTERM in the first moments of a process, before the runtime has installed the service group's signal
    /// handlers, ends it with the default action (status 15) or is lost; the scenarios test the shutdown of a
    /// running engine, so they wait for that.
    func waitUntilStarted() {
        let deadline = Date().addingTimeInterval(10)
        while process?.isRunning == true, Date() < deadline {
            let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
            if text.components(separatedBy: "engine started").count - 1 >= starts { return }
            usleep(20_000)
        }
    }

    var output: String { String((try? String(contentsOf: log, encoding: .utf8))?.suffix(4000) ?? "") }
}
