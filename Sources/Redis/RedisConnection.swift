import CHiredis
import Foundation

/// A blocking connection to one Redis, over hiredis.
///
/// Every call takes the connection's lock for its whole round trip, so one connection serves one caller at a
/// time; give each loop its own connection. After an I/O error the hiredis context is freed and the next call
/// reconnects, waiting a growing backoff (100 ms doubling to 5 s) between failed attempts.
/// Use ``RedisClient`` from async code: it runs these calls on a thread of its own.
public final class RedisConnection: @unchecked Sendable {
    public let configuration: RedisConfiguration
    private let lock = NSLock()
    // Guarded by `lock`.
    private var context: UnsafeMutablePointer<redisContext>?
    /// The scripts this connection loaded and their SHA1s. A list, not a dictionary keyed by the body: hashing a
    /// 10 KB body on every call was 13% of the engine's CPU for a listRuns page, while `==` on the very string a
    /// caller keeps in a `static let` is one comparison of its storage (and ~20 scripts are ever loaded).
    private var scriptSHAs: [(source: String, sha: String)] = []
    private var backoff: Double = 0
    private var lastFailure: Date?

    public init(configuration: RedisConfiguration) {
        self.configuration = configuration
    }

    deinit {
        if let context { redisFree(context) }
    }

    /// Sends one command, returns its reply. A server error comes back as `.error`, not thrown.
    public func send(_ arguments: [String]) throws(RedisError) -> RESPValue {
        try pipeline([arguments])[0]
    }

    /// Sends one command and throws a server error reply.
    @discardableResult
    public func call(_ arguments: [String]) throws(RedisError) -> RESPValue {
        let reply = try send(arguments)
        if case .error(let message) = reply { throw RedisError(.server, message) }
        return reply
    }

    /// Sends every command in one write, then reads every reply in order.
    public func pipeline(_ commands: [[String]]) throws(RedisError) -> [RESPValue] {
        lock.lock()
        defer { lock.unlock() }
        return try pipelineLocked(commands)
    }

    /// Runs a Lua script by `EVALSHA`, loading it (`SCRIPT LOAD`) first when this connection has not yet. When the
    /// server answers `NOSCRIPT` (after a restart or `SCRIPT FLUSH`; nothing ran), the call is sent once as `EVAL`
    /// with the body, which never answers NOSCRIPT: reloading and retrying `EVALSHA` could meet another flush, as it
    /// did in CI while a fault test flushed scripts in a loop.
    public func evalScript(_ source: String, keys: [String], arguments: [String]) throws(RedisError) -> RESPValue {
        lock.lock()
        defer { lock.unlock() }
        let sha = try loadedSHA(source)
        let reply = try pipelineLocked([["EVALSHA", sha, String(keys.count)] + keys + arguments])[0]
        guard case .error(let message) = reply, message.hasPrefix("NOSCRIPT") else { return reply }
        scriptSHAs.removeAll { $0.source == source }
        return try pipelineLocked(Self.evalCommands(source, [(keys, arguments)]))[0]
    }

    /// Runs one script many times in one pipeline, then `then` (a read that sees their writes); replies come
    /// in call order.
    ///
    /// The calls are `EVAL` with the script's body, not `EVALSHA`: in a pipeline, a `SCRIPT FLUSH` between two
    /// calls, and a reload by any other connection, can answer `ok, NOSCRIPT, ok`, so a later call would run
    /// before an earlier one that must then be sent again. For scripts that keep an order (the apply script's
    /// watermark) that loses the earlier call. `EVAL` never answers NOSCRIPT; Redis caches the body by hash.
    public func evalScriptPipelined(
        _ source: String, calls: [(keys: [String], arguments: [String])], then: [[String]] = []
    ) throws(RedisError) -> [RESPValue] {
        lock.lock()
        defer { lock.unlock() }
        return try pipelineLocked(Self.evalCommands(source, calls) + then)
    }

    /// `EVAL` commands for `calls` of one script (see ``evalScriptPipelined(_:calls:then:)`` for why not EVALSHA).
    public static func evalCommands(_ source: String, _ calls: [(keys: [String], arguments: [String])]) -> [[String]] {
        calls.map { ["EVAL", source, String($0.keys.count)] + $0.keys + $0.arguments }
    }

    /// Writes commands without reading their replies, so the caller can work while Redis executes them;
    /// ``receive(_:)`` reads the replies later, in order. Between the two, nobody else may use the connection,
    /// and a caller that gives up must ``close()`` it (the unread replies would answer the next call).
    public func sendOnly(_ commands: [[String]]) throws(RedisError) {
        lock.lock()
        defer { lock.unlock() }
        let ctx = try connectedContext()
        try append(commands, ctx)
        var done: Int32 = 0
        while done == 0 {
            if redisBufferWrite(ctx, &done) != REDIS_OK { throw ioFailure(ctx) }
        }
    }

    /// Reads `count` replies of commands sent by ``sendOnly(_:)``.
    public func receive(_ count: Int) throws(RedisError) -> [RESPValue] {
        lock.lock()
        defer { lock.unlock() }
        guard let ctx = context else { throw RedisError(.connection, "the connection was closed with replies unread") }
        var replies: [RESPValue] = []
        replies.reserveCapacity(count)
        for _ in 0..<count {
            var raw: UnsafeMutableRawPointer?
            if redisGetReply(ctx, &raw) != REDIS_OK || raw == nil { throw ioFailure(ctx) }
            defer { freeReplyObject(raw) }
            replies.append(Self.convert(raw!.assumingMemoryBound(to: redisReply.self)))
        }
        return replies
    }

    /// Deletes (`UNLINK`) every key matching `pattern`, by `SCAN`, so as not to block the server.
    public func unlinkKeys(matching pattern: String) throws(RedisError) {
        var cursor = "0"
        repeat {
            let reply = try call(["SCAN", cursor, "MATCH", pattern, "COUNT", "1000"])
            let parts = reply.array ?? []
            cursor = parts.first?.string ?? "0"
            let keys = (parts.count > 1 ? parts[1].array ?? [] : []).compactMap(\.string)
            if !keys.isEmpty { try call(["UNLINK"] + keys) }
        } while cursor != "0"
    }

    /// Connects now if not connected (waiting out the reconnect backoff, as any call does), sending nothing else.
    /// A failure here means no command was sent, so a caller may safely send it elsewhere: the cluster client
    /// re-discovers the slot map and retries then, whereas an I/O error after sending leaves unknown what ran.
    public func connect() throws(RedisError) {
        lock.lock()
        defer { lock.unlock() }
        _ = try connectedContext()
    }

    /// Drops the connection; the next call reconnects.
    public func close() {
        lock.lock()
        defer { lock.unlock() }
        dropContext()
    }

    // MARK: - Private (called with `lock` held)

    /// The script's SHA1, loading it (`SCRIPT LOAD`) when this connection has not yet.
    private func loadedSHA(_ source: String) throws(RedisError) -> String {
        if let known = scriptSHAs.first(where: { $0.source == source }) { return known.sha }
        let loaded = try pipelineLocked([["SCRIPT", "LOAD", source]])[0]
        guard case .string(let sha) = loaded else { throw RedisError(.server, "SCRIPT LOAD failed: \(loaded)") }
        scriptSHAs.append((source, sha))
        return sha
    }

    private func pipelineLocked(_ commands: [[String]]) throws(RedisError) -> [RESPValue] {
        let ctx = try connectedContext()
        try append(commands, ctx)
        var replies: [RESPValue] = []
        replies.reserveCapacity(commands.count)
        for _ in commands {
            var raw: UnsafeMutableRawPointer?
            if redisGetReply(ctx, &raw) != REDIS_OK || raw == nil {
                throw ioFailure(ctx)
            }
            let reply = raw!.assumingMemoryBound(to: redisReply.self)
            defer { freeReplyObject(raw) }
            replies.append(Self.convert(reply))
        }
        return replies
    }

    private func ioFailure(_ ctx: UnsafeMutablePointer<redisContext>) -> RedisError {
        let message = Self.contextError(ctx)
        dropContext()
        lastFailure = Date()
        backoff = backoff == 0 ? 0.1 : min(backoff * 2, 5)
        return RedisError(.connection, message)
    }

    private func dropContext() {
        if let context { redisFree(context) }
        context = nil
        scriptSHAs = []
    }

    private func connectedContext() throws(RedisError) -> UnsafeMutablePointer<redisContext> {
        if let context { return context }
        if let lastFailure, backoff > 0 {
            let wait = backoff - Date().timeIntervalSince(lastFailure)
            if wait > 0 { Thread.sleep(forTimeInterval: wait) }
        }
        let timeout = Self.timeval(configuration.timeoutSeconds)
        guard let ctx = redisConnectWithTimeout(configuration.host, Int32(configuration.port), timeout) else {
            lastFailure = Date()
            backoff = backoff == 0 ? 0.1 : min(backoff * 2, 5)
            throw RedisError(.connection, "cannot allocate a hiredis context")
        }
        if ctx.pointee.err != 0 {
            let message = Self.contextError(ctx)
            redisFree(ctx)
            lastFailure = Date()
            backoff = backoff == 0 ? 0.1 : min(backoff * 2, 5)
            throw RedisError(
                .connection, "cannot connect to \(configuration.host):\(configuration.port): \(message)")
        }
        _ = redisSetTimeout(ctx, timeout)
        context = ctx
        var setup: [[String]] = []
        if let password = configuration.password {
            if let username = configuration.username {
                setup.append(["AUTH", username, password])
            } else {
                setup.append(["AUTH", password])
            }
        }
        if configuration.database != 0 { setup.append(["SELECT", String(configuration.database)]) }
        if !setup.isEmpty {
            let replies = try pipelineLocked(setup)
            for reply in replies {
                if case .error(let message) = reply {
                    dropContext()
                    throw RedisError(.connection, "connection setup failed: \(message)")
                }
            }
        }
        backoff = 0
        return ctx
    }

    private static func timeval(_ seconds: Double) -> Glibc.timeval {
        let whole = Int(seconds)
        return Glibc.timeval(tv_sec: whole, tv_usec: Int((seconds - Double(whole)) * 1_000_000))
    }

    private static func contextError(_ ctx: UnsafeMutablePointer<redisContext>) -> String {
        let message = withUnsafeBytes(of: ctx.pointee.errstr) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        return message.isEmpty ? "I/O error \(ctx.pointee.err)" : message
    }

    private static func convert(_ reply: UnsafeMutablePointer<redisReply>) -> RESPValue {
        let r = reply.pointee
        switch r.type {
        case REDIS_REPLY_STRING, REDIS_REPLY_STATUS:
            return .string(string(r.str, r.len))
        case REDIS_REPLY_ERROR:
            return .error(string(r.str, r.len))
        case REDIS_REPLY_INTEGER:
            return .integer(Int(r.integer))
        case REDIS_REPLY_NIL:
            return .null
        case REDIS_REPLY_ARRAY:
            var items: [RESPValue] = []
            items.reserveCapacity(Int(r.elements))
            for i in 0..<Int(r.elements) {
                if let element = r.element[i] { items.append(convert(element)) } else { items.append(.null) }
            }
            return .array(items)
        default:
            return .null
        }
    }

    private static func string(_ pointer: UnsafeMutablePointer<CChar>?, _ length: Int) -> String {
        guard let pointer, length > 0 else { return "" }
        return pointer.withMemoryRebound(to: UInt8.self, capacity: length) {
            String(decoding: UnsafeBufferPointer(start: $0, count: length), as: UTF8.self)
        }
    }

    /// Writes the commands into hiredis's output buffer, already in RESP: one buffer for the whole pipeline,
    /// handed over in one call (hiredis formatting each argument with sdscatfmt was 6% of the engine's CPU).
    private func append(_ commands: [[String]], _ ctx: UnsafeMutablePointer<redisContext>) throws(RedisError) {
        if commands.isEmpty { return }
        let bytes = Self.resp(commands)
        let status = bytes.withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) { redisAppendFormattedCommand(ctx, $0.baseAddress, $0.count) }
        }
        if status != REDIS_OK { throw ioFailure(ctx) }
    }

    /// The RESP encoding of commands: an array of bulk strings each (binary safe). Written into a buffer sized
    /// exactly first (appending byte by byte, with a capacity check per byte, was most of this function's time).
    static func resp(_ commands: [[String]]) -> [UInt8] {
        func digits(_ n: Int) -> Int {
            var d = 1
            var rest = n
            while rest >= 10 {
                rest /= 10
                d += 1
            }
            return d
        }
        var size = 0
        for command in commands {
            size += 3 + digits(command.count)
            for argument in command {
                let n = argument.utf8.count
                size += 5 + digits(n) + n
            }
        }
        return [UInt8](unsafeUninitializedCapacity: size) { buffer, initialized in
            guard let base = buffer.baseAddress else { return }
            var at = 0
            func byte(_ b: UInt8) {
                base[at] = b
                at += 1
            }
            // Lengths and counts, in decimal.
            func number(_ n: Int) {
                let d = digits(n)
                var rest = n
                for i in stride(from: d - 1, through: 0, by: -1) {
                    base[at + i] = UInt8(ascii: "0") + UInt8(rest % 10)
                    rest /= 10
                }
                at += d
            }
            for command in commands {
                byte(UInt8(ascii: "*"))
                number(command.count)
                byte(13)
                byte(10)
                for argument in command {
                    let n = argument.utf8.count
                    byte(UInt8(ascii: "$"))
                    number(n)
                    byte(13)
                    byte(10)
                    // Native strings hand over their UTF-8 bytes in one copy; others are copied byte by byte.
                    let copied: Void? = argument.utf8.withContiguousStorageIfAvailable { bytes in
                        if let source = bytes.baseAddress, n > 0 { (base + at).update(from: source, count: n) }
                    }
                    if copied != nil {
                        at += n
                    } else {
                        for b in argument.utf8 { byte(b) }
                    }
                    byte(13)
                    byte(10)
                }
            }
            initialized = at
        }
    }
}
