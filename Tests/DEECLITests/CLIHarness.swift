import DEECore
import DEETestSupport
import Foundation
import Redis
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What one `dee` invocation left: its exit code and its output.
struct CLIResult: Sendable, CustomStringConvertible {
    let status: Int32
    let stdout: String
    let stderr: String

    /// stdout as JSON (for `--json`).
    var json: JSONValue? { JSONValue.parse(stdout) }
    /// stderr as JSON (an error with `--json`).
    var errorJSON: JSONValue? { JSONValue.parse(stderr) }
    /// stdout as JSON lines.
    var jsonLines: [JSONValue] { stdout.split(separator: "\n").compactMap { JSONValue.parse(String($0)) } }

    var description: String { "exit \(status)\n--- stdout\n\(stdout)--- stderr\n\(stderr)" }
}

struct CLIHarnessError: Error, CustomStringConvertible {
    let description: String
}

/// Drives the built `dee` executable as a user would, against a real Redis and a `dee serve` child process, each
/// test under a key prefix of its own.
enum CLI {
    /// The `dee` executable (or another of the package's, `program`) in the build's bin path, beside the test bundle.
    static func executable(_ program: String = "dee") throws -> String {
        var starts: [URL] = []
        if let first = CommandLine.arguments.first { starts.append(URL(fileURLWithPath: first)) }
        starts.append(Bundle.main.bundleURL)
        for start in starts {
            var dir = start.deletingLastPathComponent()
            for _ in 0..<4 {
                let candidate = dir.appendingPathComponent(program).path
                var isDirectory: ObjCBool = false
                if FileManager.default.fileExists(atPath: candidate, isDirectory: &isDirectory), !isDirectory.boolValue,
                    FileManager.default.isExecutableFile(atPath: candidate)
                {
                    return candidate
                }
                dir = dir.deletingLastPathComponent()
            }
        }
        throw CLIHarnessError(description: "no \(program) executable beside the test bundle (\(starts.map(\.path)))")
    }

    /// Runs `dee arguments…` with stdin from `input` (or /dev/null: never a terminal), waits at most `limit`
    /// seconds (then kills it, and the result says so), and returns what it printed.
    static func run(_ arguments: [String], input: String? = nil, limit: Double = 60, program: String = "dee") throws
        -> CLIResult
    {
        try start(arguments, input: input, program: program).wait(limit: limit)
    }

    /// Starts `dee arguments…`; ``Running/wait(limit:)`` collects it.
    static func start(_ arguments: [String], input: String? = nil, program: String = "dee") throws -> Running {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("dee-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let out = directory.appendingPathComponent("stdout")
        let err = directory.appendingPathComponent("stderr")
        FileManager.default.createFile(atPath: out.path, contents: nil)
        FileManager.default.createFile(atPath: err.path, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try executable(program))
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment.removeValue(forKey: "REDIS_URL")
        process.environment = environment
        process.standardOutput = try FileHandle(forWritingTo: out)
        process.standardError = try FileHandle(forWritingTo: err)
        if let input {
            let file = directory.appendingPathComponent("stdin")
            try Data(input.utf8).write(to: file)
            process.standardInput = try FileHandle(forReadingFrom: file)
        } else {
            process.standardInput = FileHandle.nullDevice
        }
        try process.run()
        return Running(process: process, directory: directory)
    }

    /// A `dee` process the test started.
    final class Running: @unchecked Sendable {
        let process: Process
        let directory: URL

        init(process: Process, directory: URL) {
            self.process = process
            self.directory = directory
        }

        deinit {
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            try? FileManager.default.removeItem(at: directory)
        }

        /// Waits at most `limit` seconds for it to exit (then kills it), and returns what it printed.
        func wait(limit: Double = 60) -> CLIResult {
            let deadline = Date().addingTimeInterval(limit)
            while process.isRunning && Date() < deadline { usleep(10_000) }
            var killed = false
            if process.isRunning {
                kill(process.processIdentifier, SIGKILL)
                killed = true
            }
            process.waitUntilExit()
            let stdout = (try? String(contentsOf: directory.appendingPathComponent("stdout"), encoding: .utf8)) ?? ""
            var stderr = (try? String(contentsOf: directory.appendingPathComponent("stderr"), encoding: .utf8)) ?? ""
            if killed { stderr += "\n[killed by the test after \(limit) s]" }
            return CLIResult(status: killed ? -1 : process.terminationStatus, stdout: stdout, stderr: stderr)
        }
    }
}

/// One test's deployment: a unique prefix on the test Redis, a `dee serve` child for it, and the keys deleted after.
final class Deployment: @unchecked Sendable {
    let url: String
    let prefix: String
    let redis: RedisConnection
    private var engine: Process?
    private let log: URL
    private var files: [URL] = []

    init(engine: Bool = true) throws {
        url = try TestRedis.url()
        prefix = TestRedis.uniquePrefix()
        redis = RedisConnection(configuration: try RedisConfiguration(url: url))
        log = FileManager.default.temporaryDirectory.appendingPathComponent("dee-cli-engine-\(prefix).log")
        if engine { try startEngine() }
    }

    deinit {
        stopEngine()
        try? redis.unlinkKeys(matching: "\(prefix):*")
        redis.close()
        try? FileManager.default.removeItem(at: log)
        for file in files { try? FileManager.default.removeItem(at: file) }
    }

    /// The connection options every invocation takes.
    var options: [String] { ["--redis-url", url, "--prefix", prefix] }

    /// `dee <arguments> --redis-url … --prefix …`.
    func dee(_ arguments: String..., input: String? = nil, limit: Double = 60) throws -> CLIResult {
        try CLI.run(arguments + options, input: input, limit: limit)
    }

    func dee(arguments: [String], input: String? = nil, limit: Double = 60) throws -> CLIResult {
        try CLI.run(arguments + options, input: input, limit: limit)
    }

    private func startEngine() throws {
        FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try CLI.executable())
        p.arguments = [
            "serve", "--redis-url", url, "--prefix", prefix, "--consumer", "cli-\(prefix)", "--log-level", "warning",
            "--lease", "2s", "--claim-idle", "2s", "--block", "100ms",
        ]
        p.standardInput = FileHandle.nullDevice
        p.standardOutput = handle
        p.standardError = handle
        try p.run()
        engine = p
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
            "dee-cli-test-watchdog", String(ProcessInfo.processInfo.processIdentifier), String(p.processIdentifier),
        ]
        watchdog.standardInput = FileHandle.nullDevice
        watchdog.standardOutput = FileHandle.nullDevice
        watchdog.standardError = FileHandle.nullDevice
        try? watchdog.run()
    }

    /// SIGTERM, then SIGKILL if it has not exited within 10 s.
    func stopEngine() {
        guard let engine, engine.isRunning else { return }
        kill(engine.processIdentifier, SIGTERM)
        let deadline = Date().addingTimeInterval(10)
        while engine.isRunning && Date() < deadline { usleep(20_000) }
        if engine.isRunning { kill(engine.processIdentifier, SIGKILL) }
        engine.waitUntilExit()
    }

    var engineLog: String { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }

    /// Writes `text` to a file of this test and returns its path.
    func file(_ name: String, _ text: String) throws -> String {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("dee-cli-\(prefix)-\(name)")
        try Data(text.utf8).write(to: url)
        files.append(url)
        return url.path
    }

    static let welcomePlan = """
        {"id":"welcome","name":"Welcome","exitOn":["unsubscribed"],"steps":[
          {"id":"intro","type":"action","action":"send_email","params":{"template":"intro","to":"{{contact.email}}"}},
          {"id":"pause","type":"wait","ticks":3},
          {"id":"nudge","type":"action","action":"send_email","params":{"template":"nudge"}},
          {"id":"done","type":"end","outcome":"finished"}]}
        """

    /// Registers the welcome plan through the CLI.
    func registerWelcome() throws {
        let result = try dee("plan", "register", try file("welcome.json", Self.welcomePlan))
        #expect(result.status == 0, "\(result)")
    }
}
