import DEECore
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A swift-log handler that writes one JSON object per line, for log shippers (`dee serve --log-format json`):
///
/// ```json
/// {"timestamp":"2026-11-23T10:00:00.000Z","level":"info","label":"dee","message":"took the partition",
///  "metadata":{"epoch":"3","loop":"partition","partition":"0"}}
/// ```
///
/// Metadata keys stay as they are (dotted: `run.id`, `stream.entry_id`, see ``LogKey``), sorted; values are
/// strings, arrays or objects as swift-log holds them. The handler's metadata, its provider's, then the call's
/// are merged in that order (later wins). None of the maintained packages this project may use ships a JSON
/// handler for swift-log, hence this small one.
public struct JSONLogHandler: LogHandler {
    /// Where lines go: standard error (one `write(2)` per line, so lines of concurrent loggers never interleave).
    public static let standardError: @Sendable (String) -> Void = { line in
        stderrLock.withLock { _ in
            var bytes = Array(line.utf8)
            bytes.append(UInt8(ascii: "\n"))
            var offset = 0
            while offset < bytes.count {
                let n = bytes[offset...].withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
                if n <= 0 { break }
                offset += n
            }
        }
    }
    private static let stderrLock = Mutex(())

    public let label: String
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    private let output: @Sendable (String) -> Void
    private let now: @Sendable () -> Int64

    /// A handler writing to `output` (a test collects the lines); `now` gives epoch ms.
    public init(
        label: String, metadataProvider: Logger.MetadataProvider? = nil,
        output: @escaping @Sendable (String) -> Void = JSONLogHandler.standardError,
        now: @escaping @Sendable () -> Int64 = JSONLogHandler.epochMilliseconds
    ) {
        self.label = label
        self.metadataProvider = metadataProvider
        self.output = output
        self.now = now
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { _, new in new } }
        if let own = event.metadata { merged.merge(own) { _, new in new } }
        output(Self.line(
            timestamp: now(), level: event.level, label: label, message: event.message.description, metadata: merged))
    }

    /// One record as its JSON line (without the newline).
    public static func line(
        timestamp ms: Int64, level: Logger.Level, label: String, message: String, metadata: Logger.Metadata
    ) -> String {
        var out = "{\"timestamp\":\"" + Timestamp.iso(ms) + "\",\"level\":\"" + level.rawValue + "\",\"label\":"
        appendString(label, to: &out)
        out += ",\"message\":"
        appendString(message, to: &out)
        out += ",\"metadata\":"
        appendObject(metadata, to: &out)
        out += "}"
        return out
    }

    /// Now, in epoch milliseconds (the wall clock: a log line's time is for people and shippers, not the engine).
    public static let epochMilliseconds: @Sendable () -> Int64 = {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }

    private static func appendObject(_ metadata: Logger.Metadata, to out: inout String) {
        out += "{"
        for (i, key) in metadata.keys.sorted().enumerated() {
            if i > 0 { out += "," }
            appendString(key, to: &out)
            out += ":"
            if let value = metadata[key] { appendValue(value, to: &out) }
        }
        out += "}"
    }

    private static func appendValue(_ value: Logger.Metadata.Value, to out: inout String) {
        switch value {
        case .string(let s): appendString(s, to: &out)
        case .stringConvertible(let c): appendString(c.description, to: &out)
        case .dictionary(let d): appendObject(d, to: &out)
        case .array(let a):
            out += "["
            for (i, v) in a.enumerated() {
                if i > 0 { out += "," }
                appendValue(v, to: &out)
            }
            out += "]"
        }
    }

    /// A JSON string literal (RFC 8259 escapes; everything else, UTF-8 included, as is).
    static func appendString(_ s: String, to out: inout String) {
        out += "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
    }
}

/// The metadata keys the engine's log lines use, dotted as swift-log's structured-logging guide recommends, so that
/// a log shipper can index them.
public enum LogKey {
    /// The run a line is about.
    public static let runId = "run.id"
    /// The command's `type`.
    public static let commandType = "command.type"
    /// The ingress or inbox stream entry id (the command id).
    public static let streamEntryId = "stream.entry_id"
    /// The partition number.
    public static let partition = "partition"
    /// The loop that logged (`router`, `partition`, `ticker`, `actions-retention`, `metrics`).
    public static let loop = "loop"
}
