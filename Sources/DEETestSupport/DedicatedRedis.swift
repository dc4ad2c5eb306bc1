import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A `redis-server` of one test's own, on 127.0.0.1, that the test may stop and start again on the same port and
/// data directory: gracefully (`SHUTDOWN`, which writes the AOF), or with SIGKILL. For fault tests that restart
/// Redis under load; ordinary tests share ``TestRedis/url()``.
public final class DedicatedRedis: @unchecked Sendable {
    public let port: UInt16
    public let directory: URL
    public let arguments: [String]
    private var process: Process?
    private let server: String

    /// Starts it. `arguments` are extra redis-server options (`--appendonly yes --appendfsync always`).
    public init(arguments: [String] = ["--appendonly", "yes", "--appendfsync", "always"]) throws {
        guard let server = TestRedis.findExecutable("redis-server") else {
            throw TestRedisError(description: "redis-server is not on PATH (Debian: apt-get install -y redis-server)")
        }
        self.server = server
        self.port = try TestRedis.freeLoopbackPort()
        self.directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "dee-dedicated-redis-\(ProcessInfo.processInfo.processIdentifier)-\(TestRedis.uniquePrefix())")
        self.arguments = arguments
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try start()
    }

    deinit {
        killHard()
        try? FileManager.default.removeItem(at: directory)
    }

    public var url: String { "redis://127.0.0.1:\(port)" }

    public var isRunning: Bool { process?.isRunning ?? false }

    /// Starts the server (again) on its port and directory, and waits until it answers with its data loaded.
    public func start(timeout: TimeInterval = 20) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: server)
        process.arguments = [
            "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--dir", directory.path, "--daemonize", "no",
        ] + arguments
        process.standardInput = FileHandle.nullDevice
        let outputFile = directory.appendingPathComponent("redis.out")
        if !FileManager.default.fileExists(atPath: outputFile.path) {
            FileManager.default.createFile(atPath: outputFile.path, contents: nil)
        }
        let output = try FileHandle(forWritingTo: outputFile)
        output.seekToEndOfFile()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        self.process = process
        // The same watchdog as the shared test Redis: it never outlives the test process.
        let watchdog = Process()
        watchdog.executableURL = URL(fileURLWithPath: "/bin/sh")
        watchdog.arguments = [
            "-c",
            """
            while kill -0 "$1" 2>/dev/null && kill -0 "$2" 2>/dev/null; do sleep 1; done
            [ "$(cat /proc/$2/comm 2>/dev/null)" = redis-server ] && kill -KILL "$2" 2>/dev/null
            exit 0
            """,
            "dee-dedicated-redis-watchdog", String(ProcessInfo.processInfo.processIdentifier),
            String(process.processIdentifier),
        ]
        watchdog.standardInput = FileHandle.nullDevice
        watchdog.standardOutput = FileHandle.nullDevice
        watchdog.standardError = FileHandle.nullDevice
        try? watchdog.run()
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            guard process.isRunning else {
                let log = (try? String(contentsOf: outputFile, encoding: .utf8)) ?? ""
                throw TestRedisError(description: "redis-server on port \(port) exited at start:\n\(log.suffix(2000))")
            }
            if let reply = TestRedis.query(port: port, "PING\r\n"), reply.hasPrefix("+PONG") { return }
            usleep(50_000)
        }
        throw TestRedisError(description: "redis-server on port \(port) did not answer within \(Int(timeout)) s")
    }

    /// `SHUTDOWN` (the AOF is written and fsynced first), then waits for the process to exit.
    public func shutdownGracefully() {
        _ = TestRedis.query(port: port, "SHUTDOWN\r\n")
        let deadline = Date().addingTimeInterval(20)
        while process?.isRunning == true && Date() < deadline { usleep(20_000) }
        killHard()
    }

    /// SIGKILL: what the OS or an operator's `kill -9` does. With `appendfsync always`, every write Redis
    /// acknowledged is in the AOF.
    public func killHard() {
        guard let process, process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }
}
