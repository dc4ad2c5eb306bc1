import DEEClient
import DEETestSupport
import Foundation
import Redis
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `dee serve --metrics-port 0 --log-format json` as an operator runs it: a real child process on a real Redis,
/// scraped over HTTP on 127.0.0.1, its stderr read line by line as JSON.
@Suite(.serialized) struct ObservabilityTests {
    static let flags = ["--partitions", "2", "--metrics-port", "0", "--log-format", "json", "--log-level", "debug"]

    @Test(.timeLimit(.minutes(2))) func metricsHealthAndJSONLogsOfARealEngine() async throws {
        try await offPool {
            let executable = try #require(CrashTests.deeExecutable(), "build the dee executable first")
            let url = try TestRedis.url()
            let prefix = TestRedis.uniquePrefix()
            let log = FileManager.default.temporaryDirectory.appendingPathComponent("dee-obs-\(prefix).log")
            defer { try? FileManager.default.removeItem(at: log) }
            let redis = RedisConnection(configuration: try RedisConfiguration(url: url))
            defer { _ = try? redis.unlinkKeys(matching: "\(prefix):*") }
            let engine = try EngineProcess(
                executable: executable, url: url, prefix: prefix, consumer: "obs", extra: Self.flags, log: log)
            defer { engine.killHard() }
            let port = try Self.metricsPort(log, engine)

            let client = DEEClient(redis: RedisConnection(configuration: try RedisConfiguration(url: url)), prefix: prefix)
            #expect(try client.call("registerPlan", ["plan": simplePlan("obs")], timeout: 30).ok)
            for i in 0..<3 {
                let reply = try client.call("execute", ["planId": "obs", "contact": #"{"id":"c\#(i)"}"#], timeout: 30)
                #expect(reply.ok, "\(reply.fields)")
            }
            #expect(try client.call("getRun", ["runId": "1795465714287-000000-00000-0"], timeout: 30).error == "not_found")
            #expect(try client.call("noSuchCommand", [:], timeout: 30).error == "unknown_command")
            #expect(try client.call("tick", ["count": "2"], timeout: 30).ok)

            // The counters are recorded before the reply is sent; the sampled gauges within a sample interval.
            var samples: [Sample] = []
            let deadline = Date().addingTimeInterval(30)
            repeat {
                let (status, body) = try HTTP.get(port: port, path: "/metrics")
                #expect(status == 200)
                samples = try Prometheus.parse(body)
                if samples.value("dee_runs", ["status": "completed"]) == 3 { break }
                usleep(200_000)
            } while Date() < deadline
            #expect(samples.value("dee_commands_applied_total", ["type": "execute"]) == 3)
            #expect(samples.value("dee_commands_applied_total", ["type": "registerPlan"]) == 1)
            #expect((samples.value("dee_commands_applied_total", ["type": "tick"]) ?? 0) >= 1)
            #expect(samples.value("dee_commands_failed_total", ["type": "getRun", "code": "not_found"]) == 1)
            #expect(samples.value("dee_commands_failed_total", ["type": "other", "code": "unknown_command"]) == 1)
            #expect(samples.value("dee_command_apply_duration_seconds_count", ["type": "execute"]) == 3)
            #expect((samples.value("dee_tick_duration_seconds_count", [:]) ?? 0) >= 1)
            #expect(samples.value("dee_partition_owned", ["partition": "0"]) == 1)
            #expect(samples.value("dee_partition_owned", ["partition": "1"]) == 1)
            #expect(samples.value("dee_router_lease", [:]) == 1)
            #expect(samples.value("dee_runs", ["status": "completed"]) == 3)
            #expect(samples.value("dee_ingress_pending", [:]) != nil)
            #expect(samples.value("dee_redis_up", [:]) == 1)

            let (status, body) = try HTTP.get(port: port, path: "/healthz")
            #expect(status == 200, "\(body)")
            let health = try #require(try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any])
            #expect(health["redis"] as? String == "reachable")
            #expect(health["partitions"] as? [Int] == [0, 1])
            #expect(health["router"] as? Bool == true)

            let stopped = engine.stop(grace: 20)
            #expect(stopped?.status == 0, "\(engine.output)")

            // Every line on stderr is one JSON object with the five fields; the dotted keys are there.
            let lines = try String(contentsOf: log, encoding: .utf8).split(separator: "\n").map(String.init)
            var metadata: [[String: Any]] = []
            for line in lines {
                let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
                let o = try #require(object, "not a JSON object: \(line)")
                #expect(Set(o.keys) == ["timestamp", "level", "label", "message", "metadata"], "\(line)")
                metadata.append(o["metadata"] as? [String: Any] ?? [:])
            }
            #expect(metadata.contains { $0["partition"] as? String == "1" })
            // The router's debug line for the rejected command names its entry and type.
            #expect(metadata.contains { $0["stream.entry_id"] != nil && $0["command.type"] as? String == "noSuchCommand" })
        }
    }

    @Test(.timeLimit(.minutes(2))) func healthzSays503WhileRedisIsDown() async throws {
        try await offPool {
            let executable = try #require(CrashTests.deeExecutable(), "build the dee executable first")
            let dedicated = try DedicatedRedis(arguments: [])
            defer { dedicated.killHard() }
            let prefix = TestRedis.uniquePrefix()
            let log = FileManager.default.temporaryDirectory.appendingPathComponent("dee-obs-\(prefix).log")
            defer { try? FileManager.default.removeItem(at: log) }
            let engine = try EngineProcess(
                executable: executable, url: dedicated.url, prefix: prefix, consumer: "obs-down", extra: Self.flags,
                log: log)
            defer { engine.killHard() }
            let port = try Self.metricsPort(log, engine)
            var up = try Self.health(port, until: { status, health in status == 200 && health["partitions"] as? [Int] == [0, 1] })
            #expect(up.status == 200)

            dedicated.killHard()
            let down = try Self.health(port, until: { status, _ in status == 503 })
            #expect(down.status == 503)
            #expect(down.health["redis"] as? String == "unreachable")

            try dedicated.start()
            up = try Self.health(port, until: { status, _ in status == 200 })
            #expect(up.status == 200)
            #expect(engine.stop(grace: 20)?.status == 0, "\(engine.output)")
        }
    }

    /// Polls `/healthz` until `done` holds (or 30 s).
    static func health(_ port: Int, until done: (Int, [String: Any]) -> Bool) throws -> (status: Int, health: [String: Any]) {
        let deadline = Date().addingTimeInterval(30)
        while true {
            let (status, body) = try HTTP.get(port: port, path: "/healthz")
            let health = (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any] ?? [:]
            if done(status, health) || Date() > deadline { return (status, health) }
            usleep(100_000)
        }
    }

    /// The port the engine's metrics server bound, from its JSON log line.
    static func metricsPort(_ log: URL, _ engine: EngineProcess) throws -> Int {
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
            for line in text.split(separator: "\n") {
                guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                    let port = (o["metadata"] as? [String: Any])?["http.port"] as? String
                else { continue }
                if let p = Int(port), p > 0 { return p }
            }
            usleep(100_000)
        }
        Issue.record("no metrics port in the log:\n\(engine.output)")
        throw RedisError(.unexpectedReply, "no metrics port")
    }
}

/// One sample line of the Prometheus text format.
struct Sample {
    let name: String
    let labels: [String: String]
    let value: Double
}

extension [Sample] {
    func value(_ name: String, _ labels: [String: String]) -> Double? {
        first { $0.name == name && $0.labels == labels }?.value
    }
}

/// A strict reader of the Prometheus text format (0.0.4): every line a `# HELP`, a `# TYPE` naming a known type, or a
/// sample `name{label="value",…} number` whose family has a TYPE line before it.
enum Prometheus {
    struct Malformed: Error, CustomStringConvertible {
        let description: String
    }

    static func parse(_ text: String) throws -> [Sample] {
        var types: [String: String] = [:]
        var samples: [Sample] = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: true).map(String.init) {
            if line.hasPrefix("# TYPE ") {
                let parts = line.split(separator: " ")
                guard parts.count == 4, ["counter", "gauge", "histogram", "summary", "untyped"].contains(parts[3]) else {
                    throw Malformed(description: "bad TYPE line: \(line)")
                }
                types[String(parts[2])] = String(parts[3])
                continue
            }
            if line.hasPrefix("# HELP ") || line.hasPrefix("#") { continue }
            let sample = try parseSample(line)
            let family = ["_bucket", "_sum", "_count"].reduce(sample.name) { name, suffix in
                name.hasSuffix(suffix) && types[String(name.dropLast(suffix.count))] == "histogram"
                    ? String(name.dropLast(suffix.count)) : name
            }
            guard types[family] != nil else { throw Malformed(description: "no TYPE for \(sample.name)") }
            samples.append(sample)
        }
        return samples
    }

    static func parseSample(_ line: String) throws -> Sample {
        let chars = Array(line)
        var i = 0
        func isNameChar(_ c: Character, first: Bool) -> Bool {
            c == "_" || c == ":" || c.isASCII && c.isLetter || (!first && c.isASCII && c.isNumber)
        }
        var name = ""
        while i < chars.count, isNameChar(chars[i], first: name.isEmpty) {
            name.append(chars[i])
            i += 1
        }
        guard !name.isEmpty else { throw Malformed(description: "no metric name: \(line)") }
        var labels: [String: String] = [:]
        if i < chars.count, chars[i] == "{" {
            i += 1
            while i < chars.count, chars[i] != "}" {
                var key = ""
                while i < chars.count, isNameChar(chars[i], first: key.isEmpty), chars[i] != ":" {
                    key.append(chars[i])
                    i += 1
                }
                guard !key.isEmpty, i + 1 < chars.count, chars[i] == "=", chars[i + 1] == "\"" else {
                    throw Malformed(description: "bad label in: \(line)")
                }
                i += 2
                var value = ""
                while i < chars.count, chars[i] != "\"" {
                    if chars[i] == "\\", i + 1 < chars.count {
                        i += 1
                        value.append(chars[i] == "n" ? "\n" : chars[i])
                    } else {
                        value.append(chars[i])
                    }
                    i += 1
                }
                guard i < chars.count else { throw Malformed(description: "unterminated label value: \(line)") }
                i += 1
                labels[key] = value
                if i < chars.count, chars[i] == "," { i += 1 }
            }
            guard i < chars.count else { throw Malformed(description: "unterminated labels: \(line)") }
            i += 1
        }
        guard i < chars.count, chars[i] == " " else { throw Malformed(description: "no value: \(line)") }
        let rest = String(chars[(i + 1)...]).split(separator: " ")
        guard let first = rest.first, rest.count <= 2 else { throw Malformed(description: "bad value: \(line)") }
        let value: Double? =
            switch first {
            case "+Inf": .infinity
            case "-Inf": -.infinity
            case "NaN": .nan
            default: Double(first)
            }
        guard let value else { throw Malformed(description: "bad value: \(line)") }
        return Sample(name: name, labels: labels, value: value)
    }
}

/// A blocking HTTP/1.1 GET over a loopback socket (no HTTP client library for one test).
enum HTTP {
    struct Failed: Error, CustomStringConvertible {
        let description: String
    }

    static func get(port: Int, path: String) throws -> (status: Int, body: String) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failed(description: "socket: \(errno)") }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else { throw Failed(description: "connect to 127.0.0.1:\(port): \(errno)") }
        let request = Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n\r\n".utf8)
        guard request.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, 0) }) == request.count else {
            throw Failed(description: "send: \(errno)")
        }
        var response: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            response += buffer[0..<n]
        }
        let text = String(decoding: response, as: UTF8.self)
        guard let split = text.range(of: "\r\n\r\n") else { throw Failed(description: "no HTTP response: \(text)") }
        let head = text[..<split.lowerBound]
        let status = head.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
        return (status, String(text[split.upperBound...]))
    }
}
