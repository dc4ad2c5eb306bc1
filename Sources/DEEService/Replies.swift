import DEECore
import Redis

/// A command's outcome, as stored for dedupe and as replied.
public struct Outcome: Sendable, Equatable {
    public let result: Result<JSONValue, DEEError>
    /// The success value printed once: the reply and the stored record both use it.
    public let resultText: String?

    public init(_ result: Result<JSONValue, DEEError>) {
        self.result = result
        if case .success(let v) = result { resultText = v.canonical } else { resultText = nil }
    }
    public static func ok(_ value: JSONValue) -> Outcome { Outcome(.success(value)) }
    public static func error(_ e: DEEError) -> Outcome { Outcome(.failure(e)) }

    /// `{"ok":true,"result":…}` or `{"ok":false,"error":{code,message,field}}`.
    public var json: JSONValue {
        switch result {
        case .success(let v): return ["ok": true, "result": v]
        case .failure(let e): return ["ok": false, "error": e.json]
        }
    }

    public init?(json: JSONValue) {
        guard let o = json.object, let ok = o["ok"]?.bool else { return nil }
        if ok {
            self.init(.success(o["result"] ?? .null))
        } else {
            guard let e = o["error"].flatMap(DEEError.init(json:)) else { return nil }
            self.init(.failure(e))
        }
    }

    /// Whether it may be stored as the request's result (`internal` never is: a retry may succeed).
    public var storable: Bool {
        if case .failure(let e) = result, e.code == .internal { return false }
        return true
    }

    /// The dedupe record: `<fingerprint>\n<outcome JSON>`.
    public func record(fingerprint: String) -> String {
        if let resultText { return fingerprint + "\n{\"ok\":true,\"result\":" + resultText + "}" }
        return fingerprint + "\n" + json.canonical
    }

    public static func parseRecord(_ text: String) -> (fingerprint: String, outcome: Outcome)? {
        guard let nl = text.firstIndex(of: "\n"), let json = JSONValue.parse(String(text[text.index(after: nl)...])),
            let outcome = Outcome(json: json)
        else { return nil }
        return (String(text[..<nl]), outcome)
    }
}

/// Who gets the reply and how it is labelled.
struct ReplyAddress: Sendable {
    let replyTo: String?
    let requestId: String
    let commandId: String
    let type: String
    var actor: String? = nil

    /// The reply entry (SPEC 5): an `XADD`, in a script that gives the stream a TTL (24 h) when this reply created
    /// it. A client that deleted its reply stream on close, or let it expire, and whose command is answered late
    /// would otherwise get a stream without TTL that nobody reads, for ever. `NX` keeps a TTL the reader set (the
    /// Swift client refreshes its own on every read); a stream that already existed is left as it was.
    func command(_ outcome: Outcome, maxLen: Int) -> [String]? {
        guard let replyTo else { return nil }
        var fields = ["requestId", requestId, "commandId", commandId, "type", type]
        switch outcome.result {
        case .success(let v):
            fields += ["ok", "true", "result", outcome.resultText ?? v.canonical]
        case .failure(let e):
            fields += ["ok", "false", "error", e.code.rawValue, "message", e.message]
            if let f = e.field { fields += ["field", f] }
        }
        return ["EVAL", Self.replyScript, "1", replyTo, String(maxLen), Self.createdStreamTTLMilliseconds] + fields
    }

    static let createdStreamTTLMilliseconds = String(24 * 3600 * 1000)

    /// `XADD` with the fields in ARGV[3…]; its error (WRONGTYPE, OOM) is returned as the reply, as XADD's own.
    static let replyScript = """
        local id = redis.pcall('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', unpack(ARGV, 3))
        if type(id) == 'table' and id.err then return id end
        if redis.call('XLEN', KEYS[1]) == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[2], 'NX') end
        return id
        """
}
