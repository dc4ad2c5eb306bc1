import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Where the tests find Redis.
///
/// Tests never skip for want of a configured Redis: when `REDIS_URL` is not set, the first call to ``url()`` starts a
/// private `redis-server` on a free loopback port, once per test process, and every later call reuses it.
public enum TestRedis {
    /// The URL tests connect to: REDIS_URL when set, else a private redis-server this process starts once
    /// (on 127.0.0.1, a free port, no persistence, in a temp dir), stopped when the test process exits.
    /// Throws TestRedisError with an actionable message when redis-server is not on PATH.
    public static func url() throws -> String {
        if let configured = ProcessInfo.processInfo.environment["REDIS_URL"], !configured.isEmpty {
            return configured
        }
        return try privateServer.get()
    }

    /// A key prefix unique to one test: "t" + a random 12-char alphanumeric string (no braces, no colons).
    public static func uniquePrefix() -> String {
        let alphabet = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
        return "t" + String((0..<12).map { _ in alphabet.randomElement()! })
    }

    /// Started on first use; a `static let` is initialised exactly once even when tests race for it.
    private static let privateServer: Result<String, TestRedisError> = Result { () throws(TestRedisError) in
        try startPrivateServer()
    }

    private static let startupTimeout: TimeInterval = 10

    private static func startPrivateServer() throws(TestRedisError) -> String {
        guard let server = findExecutable("redis-server") else {
            throw TestRedisError(
                description: """
                    redis-server is not on PATH, and REDIS_URL is not set. The tests need a Redis: install it \
                    (Debian/Ubuntu: `sudo apt-get install -y redis-server`; macOS: `brew install redis`), \
                    run the tests with `scripts/test` (which installs it when run as root), \
                    or point them at a running one with REDIS_URL=redis://127.0.0.1:6379.
                    """
            )
        }
        // Another process may take the free port between our probe and redis-server's bind: try a few ports.
        var failures: [String] = []
        for _ in 0..<3 {
            do {
                return try launch(server: server)
            } catch {
                failures.append(String(describing: error))
            }
        }
        throw TestRedisError(description: failures.joined(separator: "\n"))
    }

    private static func launch(server: String) throws(TestRedisError) -> String {
        let port = try freeLoopbackPort()
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("dee-test-redis-\(ProcessInfo.processInfo.processIdentifier)-\(uniquePrefix())")
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        } catch {
            throw TestRedisError(description: "could not create the test Redis's directory \(directory.path): \(error)")
        }
        let outputFile = directory.appendingPathComponent("redis.out").path

        // redis-server runs as our child. A separate watchdog shell ends it (and removes its directory) once
        // the test process is gone, even when that process was killed and ran no cleanup. The watchdog never
        // waits on redis: it inherits our blocked SIGCHLD, and a `wait` there never returned. It checks the pid
        // still names a redis-server before killing it, so a reused pid is never hit.
        let process = Process()
        process.executableURL = URL(fileURLWithPath: server)
        process.arguments = [
            "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", directory.path,
            "--daemonize", "no",
        ]
        process.standardInput = FileHandle.nullDevice
        FileManager.default.createFile(atPath: outputFile, contents: nil)
        let output = FileHandle(forWritingAtPath: outputFile) ?? FileHandle.nullDevice
        process.standardOutput = output
        process.standardError = output
        do {
            try process.run()
        } catch {
            try? FileManager.default.removeItem(at: directory)
            throw TestRedisError(description: "could not start \(server): \(error)")
        }
        let watchdog = Process()
        watchdog.executableURL = URL(fileURLWithPath: "/bin/sh")
        watchdog.arguments = [
            "-c",
            """
            while kill -0 "$1" 2>/dev/null; do sleep 1; done
            [ "$(cat /proc/$2/comm 2>/dev/null)" = redis-server ] && kill -KILL "$2" 2>/dev/null
            rm -rf "$3"
            """,
            "dee-test-redis-watchdog", String(ProcessInfo.processInfo.processIdentifier),
            String(process.processIdentifier), directory.path,
        ]
        watchdog.standardInput = FileHandle.nullDevice
        watchdog.standardOutput = FileHandle.nullDevice
        watchdog.standardError = FileHandle.nullDevice
        try? watchdog.run()

        // Ask for the server's dir rather than just PING, so that a Redis someone else started on the same port
        // in the meantime is not mistaken for ours.
        let deadline = Date().addingTimeInterval(startupTimeout)
        while Date() < deadline {
            if !process.isRunning {
                let log = (try? String(contentsOfFile: outputFile, encoding: .utf8)) ?? "(no output)"
                try? FileManager.default.removeItem(at: directory)
                throw TestRedisError(
                    description: "\(server) on 127.0.0.1:\(port) exited at startup; its output:\n\(log.suffix(2000))"
                )
            }
            if let reply = query(port: port, "CONFIG GET dir\r\n"), reply.contains(directory.lastPathComponent) {
                return "redis://127.0.0.1:\(port)"
            }
            usleep(50_000)
        }
        process.terminate()
        throw TestRedisError(
            description: """
                \(server) on 127.0.0.1:\(port) did not answer within \(Int(startupTimeout)) s; see its output in \
                \(outputFile). Set REDIS_URL to use a Redis you started yourself.
                """
        )
    }

    static func findExecutable(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        let directories = path.split(separator: ":").map(String.init) + ["/usr/local/bin", "/opt/homebrew/bin"]
        for directory in directories where !directory.isEmpty {
            let candidate = directory + "/" + name
            if FileManager.default.isExecutableFile(atPath: candidate) {
                return candidate
            }
        }
        return nil
    }

    // MARK: Sockets

    #if os(Linux)
    private static let streamSocket = Int32(SOCK_STREAM.rawValue)
    private static let sendFlags = Int32(MSG_NOSIGNAL)
    #else
    private static let streamSocket = SOCK_STREAM
    private static let sendFlags: Int32 = 0
    #endif

    private static func loopback(port: UInt16) -> sockaddr_in {
        var address = sockaddr_in()
        #if canImport(Darwin)
        address.sin_len = UInt8(MemoryLayout<sockaddr_in>.size)
        #endif
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr = in_addr(s_addr: UInt32(0x7f00_0001).bigEndian)
        return address
    }

    /// Binds 127.0.0.1:0 and reads back the port the kernel chose.
    static func freeLoopbackPort() throws(TestRedisError) -> UInt16 {
        let fd = socket(AF_INET, streamSocket, 0)
        guard fd >= 0 else {
            throw TestRedisError(description: "could not open a socket to find a free port: errno \(errno)")
        }
        defer { close(fd) }
        var address = loopback(port: 0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress in
                bind(fd, socketAddress, length) == 0 && getsockname(fd, socketAddress, &length) == 0
            }
        }
        guard bound else {
            throw TestRedisError(description: "could not bind 127.0.0.1:0 to find a free port: errno \(errno)")
        }
        return UInt16(bigEndian: address.sin_port)
    }

    /// Sends one inline command to 127.0.0.1:port and returns what arrives within about a second, or nil when
    /// nothing listens there yet.
    static func query(port: UInt16, _ command: String) -> String? {
        let fd = socket(AF_INET, streamSocket, 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        #if canImport(Darwin)
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, socklen_t(MemoryLayout<Int32>.size))
        #endif
        var timeout = timeval(tv_sec: 1, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = loopback(port: port)
        let connected = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress in
                connect(fd, socketAddress, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
        guard connected else { return nil }
        let bytes = Array(command.utf8)
        let sent = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, sendFlags) }
        guard sent == bytes.count else { return nil }
        // A CONFIG GET reply ("*2" array) is complete at its fifth line feed; PING's or an error at its first.
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let lineFeeds = received.lazy.filter { $0 == UInt8(ascii: "\n") }.count
            if lineFeeds >= (received.first == UInt8(ascii: "*") ? 5 : 1) { break }
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard count > 0 else { break }
            received.append(contentsOf: buffer[0..<count])
        }
        return received.isEmpty ? nil : String(decoding: received, as: UTF8.self)
    }
}

/// Why the tests could not get a Redis, said so that a person knows what to do next.
public struct TestRedisError: Error, CustomStringConvertible {
    /// What went wrong and how to fix it.
    public let description: String
}
