import DEECore
import Foundation
import Logging
import Redis
import Synchronization

/// The async client of a DEE deployment: publishes SPEC 6 commands on `<prefix>:commands` and waits for their
/// replies on a reply stream of its own, `<prefix>:replies:<uuid>`. Share one per process between tasks.
///
/// - Every command carries a `requestId` (a UUID unless the caller gives one). When no reply comes within a part
///   of the call's timeout, or the connection breaks while publishing, the command is published again with the same
///   requestId (up to `attempts` times): the engine applies it once and replies its stored result again.
/// - Replies are read by one waiting caller at a time and handed to the callers they belong to (see
///   `ReplyWaiters`); the blocking hiredis calls run on the Redis clients' own threads, never on the cooperative pool.
/// - The reply stream's TTL is refreshed on every read and every publish, so it expires once the client has been idle
///   for `replyStreamTTL`; ``close()`` deletes it.
public final class DEEEngine: Sendable {
    /// The key prefix of the deployment (`dee`).
    public let prefix: String
    /// This client's reply stream, `<prefix>:replies:<uuid>`.
    public let replyStream: String
    /// The default timeout of a call: how long to wait for its reply, over every attempt.
    public let timeout: Duration
    /// How many times a command is published (with the same requestId) before the call gives up.
    public let attempts: Int
    /// How long the reply stream outlives the client's last read or publish.
    public let replyStreamTTL: Duration
    /// Recorded as `actor` in the audit log of every command, when set.
    public let actor: String?

    private let writer: RedisClient
    private let reader: RedisClient
    private let logger: Logger?
    private let state = Mutex(ReplyWaiters())
    /// The longest one blocking read of the reply stream lasts: short, so that a sleeper's wake time is honoured
    /// within about this much, and well below the socket timeout.
    private let readBlock: Duration

    /// Connects to Redis (and checks it answers). Nothing is created in Redis until the first command.
    ///
    /// - Parameters:
    ///   - redis: where the deployment's Redis is.
    ///   - prefix: the deployment's key prefix (`dee serve --prefix`).
    ///   - timeout: the default time a call waits for its reply, over every attempt.
    ///   - logger: where re-publishes and connection failures are logged (at debug and warning); none by default.
    ///   - actor: recorded as `actor` with every command (the audit log's who).
    ///   - attempts: how many times a command is published before the call times out (at least 1).
    ///   - replyStreamTTL: how long the reply stream is kept after the client's last read or publish.
    public init(
        redis: RedisConfiguration, prefix: String = "dee", timeout: Duration = .seconds(30), logger: Logger? = nil,
        actor: String? = nil, attempts: Int = 3, replyStreamTTL: Duration = .seconds(300)
    ) async throws(DEEClientError) {
        self.prefix = prefix
        self.replyStream = "\(prefix):replies:\(UUID().uuidString.lowercased())"
        self.timeout = timeout
        self.attempts = max(1, attempts)
        self.replyStreamTTL = max(replyStreamTTL, .seconds(1))
        self.actor = actor
        self.logger = logger
        self.writer = RedisClient(configuration: redis, label: "client.writer")
        self.reader = RedisClient(configuration: redis, label: "client.reader")
        self.readBlock = min(.milliseconds(250), .seconds(max(redis.timeoutSeconds, 0.002) / 2))
        do {
            try await writer.call(["PING"])
        } catch let error as RedisError {
            throw Self.failure(error, requestId: nil)
        } catch {
            throw DEEClientError(.unreachable, "\(error)")
        }
    }

    /// Publishes a command by its SPEC 6 type and wire fields (strings verbatim; numbers, booleans, objects and
    /// arrays as JSON text) and returns its SPEC 6 result.
    ///
    /// - Parameters:
    ///   - type: the command name (`getRun`, `listRuns`, …).
    ///   - fields: its arguments, one wire field each; `type`, `requestId` and `replyTo` are set by the client.
    ///   - requestId: the idempotency key; a fresh UUID when nil. A repeat within the engine's dedupe window (24 h)
    ///     changes nothing and gets the stored result.
    ///   - timeout: how long to wait for the reply, over every attempt; the client's ``timeout`` when nil.
    /// - Throws: ``DEEClientError`` with kind `.command` and the SPEC code when the engine answered `ok: false`;
    ///   `.timeout`, `.unreachable`, `.protocolError` or `.cancelled` otherwise.
    public func command(
        _ type: String, _ fields: [String: String], requestId: String? = nil, timeout: Duration? = nil
    ) async throws(DEEClientError) -> JSONValue {
        let (text, rid) = try await resultText(type, fields, requestId: requestId, timeout: timeout)
        guard let value = JSONValue.parse(text) else {
            throw DEEClientError(.protocolError, "the reply to \(type) has a result that is not JSON", requestId: rid)
        }
        return value
    }

    /// Wakes every waiting call (each throws `.cancelled`), deletes the reply stream and drops the connections.
    /// Calls made after it throw `.cancelled`.
    public func close() async {
        let wake = state.withLock { $0.close() }
        for continuation in wake { continuation.resume() }
        let stream = replyStream
        _ = try? await writer.withConnection { redis in
            defer { redis.close() }
            return try redis.call(["DEL", stream])
        }
        _ = try? await reader.withConnection { $0.close() }
    }

    // MARK: - The exchange

    /// The result text of a successful reply, and the requestId used; throws the engine's error otherwise.
    func resultText(
        _ type: String, _ fields: [String: String], requestId: String?, timeout: Duration?
    ) async throws(DEEClientError) -> (String, String) {
        let rid = requestId ?? UUID().uuidString.lowercased()
        let reply = try await exchange(type, fields, requestId: rid, timeout: timeout ?? self.timeout)
        if reply["ok"] == "true" {
            guard let result = reply["result"] else {
                throw DEEClientError(.protocolError, "the reply to \(type) has ok true and no result", requestId: rid)
            }
            return (result, rid)
        }
        guard let code = reply["error"] else {
            throw DEEClientError(.protocolError, "the reply to \(type) has neither ok true nor an error", requestId: rid)
        }
        throw DEEClientError(
            .command, reply["message"] ?? code, code: code, field: reply["field"], requestId: rid)
    }

    /// Publishes the command and waits for the reply with its requestId, publishing again after each part of the
    /// timeout without one.
    private func exchange(
        _ type: String, _ fields: [String: String], requestId: String, timeout: Duration
    ) async throws(DEEClientError) -> [String: String] {
        let clock = ContinuousClock()
        let start = clock.now
        let deadline = start + timeout
        let span = timeout / attempts
        var nextPublish = start + span
        guard let ticket = state.withLock({ $0.register(requestId: requestId, wakeAt: nextPublish) }) else {
            throw DEEClientError(.cancelled, "the client is closed", requestId: requestId)
        }
        defer { state.withLock { $0.unregister(ticket) } }
        let command = publishCommand(type, fields, requestId: requestId)
        var published = 0
        /// The last connection failure, so that a call that ran out of time because of it says so.
        var failure: RedisError?

        func publish() async {
            do {
                let id = try await writer.pipeline([command, ["PEXPIRE", replyStream, ttlMilliseconds]])[0]
                if case .error(let message) = id { failure = RedisError(.server, message) } else { failure = nil }
                published += 1
                if published > 1 {
                    logger?.debug(
                        "published a command again", metadata: metadata(type, requestId, ["attempt": "\(published)"]))
                }
            } catch {
                failure = error as? RedisError ?? RedisError(.connection, "\(error)")
                logger?.warning(
                    "could not publish a command", metadata: metadata(type, requestId, ["error": "\(error)"]))
            }
        }

        await publish()
        if let failure, failure.kind == .server {
            throw DEEClientError(.unreachable, "Redis refused the command: \(failure.message)", requestId: requestId)
        }
        while true {
            if let reply = state.withLock({ $0.reply(ticket) }) { return reply }
            if Task.isCancelled { throw DEEClientError(.cancelled, "the call was cancelled", requestId: requestId) }
            let now = clock.now
            if now >= deadline {
                if let failure { throw Self.failure(failure, requestId: requestId) }
                throw DEEClientError(
                    .timeout,
                    "no reply to \(type) (requestId \(requestId)) within \(timeout) after \(published) publish(es); "
                        + "is an engine serving prefix \(prefix)?",
                    requestId: requestId)
            }
            if published == 0 || (now >= nextPublish && published < attempts) {
                await publish()
                nextPublish = published < attempts ? now + span : deadline
                let wake = nextPublish
                state.withLock { $0.setWakeAt(ticket, wake) }
                continue
            }
            switch state.withLock({ $0.step(ticket) }) {
            case .stop:
                if Task.isCancelled { throw DEEClientError(.cancelled, "the call was cancelled", requestId: requestId) }
                throw DEEClientError(.cancelled, "the client was closed", requestId: requestId)
            case .read(let after):
                let block = min(readBlock, max(deadline - now, .milliseconds(1)))
                var entries: [(id: String, fields: [String: String])] = []
                do {
                    entries = try await readRound(after: after, block: block)
                    if failure?.kind == .connection, published > 0 { failure = nil }
                } catch {
                    failure = error
                    logger?.warning(
                        "could not read the reply stream", metadata: metadata(type, requestId, ["error": "\(error)"]))
                }
                let last = entries.last?.id
                let wake = state.withLock { $0.finishRead(entries, lastId: last, now: clock.now) }
                for continuation in wake { continuation.resume() }
            case .park:
                await withTaskCancellationHandler {
                    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                        let parked = state.withLock { $0.park(ticket, continuation) }
                        if !parked { continuation.resume() }
                    }
                } onCancel: {
                    state.withLock { $0.cancel(ticket) }?.resume()
                }
            }
        }
    }

    /// One blocking read of the reply stream after `after`, then its TTL refreshed (after the read: the read may
    /// be what saw the stream created by the engine).
    private func readRound(after: String, block: Duration) async throws(RedisError) -> [(
        id: String, fields: [String: String]
    )] {
        let milliseconds = max(1, Int(block.components.seconds * 1000 + block.components.attoseconds / 1_000_000_000_000_000))
        let read = ["XREAD", "COUNT", "1000", "BLOCK", String(milliseconds), "STREAMS", replyStream, after]
        let replies: [RESPValue]
        do {
            replies = try await reader.pipeline([read, ["PEXPIRE", replyStream, ttlMilliseconds]])
        } catch {
            throw error as? RedisError ?? RedisError(.connection, "\(error)")
        }
        if case .error(let message) = replies[0] { throw RedisError(.server, message) }
        guard let streams = replies[0].array, let first = streams.first?.array, first.count == 2 else { return [] }
        return first[1].streamEntries
    }

    /// The XADD of a command: the envelope (SPEC 5), then the arguments in name order.
    private func publishCommand(_ type: String, _ fields: [String: String], requestId: String) -> [String] {
        var args = ["XADD", "\(prefix):commands", "*", "type", type, "requestId", requestId, "replyTo", replyStream]
        if let actor, fields["actor"] == nil { args += ["actor", actor] }
        for (name, value) in fields.sorted(by: { $0.key < $1.key }) { args += [name, value] }
        return args
    }

    private var ttlMilliseconds: String {
        let c = replyStreamTTL.components
        return String(c.seconds * 1000 + c.attoseconds / 1_000_000_000_000_000)
    }

    private func metadata(_ type: String, _ requestId: String, _ more: Logger.Metadata = [:]) -> Logger.Metadata {
        var m: Logger.Metadata = ["command.type": "\(type)", "request.id": "\(requestId)", "stream.key": "\(replyStream)"]
        m.merge(more) { _, new in new }
        return m
    }

    private static func failure(_ error: RedisError, requestId: String?) -> DEEClientError {
        switch error.kind {
        case .server: return DEEClientError(.unreachable, "Redis refused: \(error.message)", requestId: requestId)
        default: return DEEClientError.unreachable(error, requestId: requestId)
        }
    }
}
