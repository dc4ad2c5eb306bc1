import DEECore
import Redis

/// A command's outcome, as stored for dedupe and as replied.
public struct Outcome: Sendable, Equatable {
    /// The success value (when it was given printed, parsed from its text on first use here) or the error.
    public var result: Result<JSONValue, DEEError> {
        if let failure { return .failure(failure) }
        return .success(value ?? resultText.flatMap(JSONValue.parse) ?? .null)
    }
    /// The success value printed once, canonical: the reply and the stored record both use it.
    public let resultText: String?
    public let failure: DEEError?
    /// nil when the success was given printed (``ok(_:)-(Run)``): the command path never needs it as a value.
    private let value: JSONValue?

    public init(_ result: Result<JSONValue, DEEError>) {
        switch result {
        case .success(let v): (value, resultText, failure) = (v, v.canonical, nil)
        case .failure(let e): (value, resultText, failure) = (nil, nil, e)
        }
    }
    private init(printed: String) { (value, resultText, failure) = (nil, printed, nil) }

    public static func ok(_ value: JSONValue) -> Outcome { Outcome(.success(value)) }
    /// A run as the answer, printed straight from it (``Run/wireText``): building `run.wire` and sorting it again
    /// was ~6 % of the owner's CPU on the execute path.
    public static func ok(_ run: Run) -> Outcome { Outcome(printed: run.wireText) }
    public static func error(_ e: DEEError) -> Outcome { Outcome(.failure(e)) }

    public static func == (a: Outcome, b: Outcome) -> Bool {
        a.failure == b.failure && (a.failure != nil || a.resultText == b.resultText)
    }

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
        failure?.code != .internal
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

    /// The reply entry (SPEC 5), as an `XADD` command. Sent in a pipeline with ``expiring(_:)``'s `PEXPIRE … NX`
    /// for its stream.
    func command(_ outcome: Outcome, maxLen: Int) -> [String]? {
        guard let replyTo else { return nil }
        var fields = ["requestId", requestId, "commandId", commandId, "type", type]
        if let e = outcome.failure {
            fields += ["ok", "false", "error", e.code.rawValue, "message", e.message]
            if let f = e.field { fields += ["field", f] }
        } else {
            fields += ["ok", "true", "result", outcome.resultText ?? "null"]
        }
        return ["XADD", replyTo, "MAXLEN", "~", String(maxLen), "*"] + fields
    }

    static let createdStreamTTLMilliseconds = String(24 * 3600 * 1000)

    /// `commands` followed by one `PEXPIRE <stream> 24h NX` for each reply stream they write: a reply stream without
    /// a TTL gets one. A client that deleted its reply stream on close, or let it expire, and whose command is
    /// answered late would otherwise get a stream without TTL that nobody reads, for ever. `NX` keeps a TTL the
    /// reader set (the Swift client refreshes its own on every read). One `PEXPIRE` per stream per pipeline, not a
    /// script per reply: an `EVAL` per reply cost Redis ~10 µs more than the `XADD` it wraps.
    static func expiring(_ commands: [[String]]) -> [[String]] {
        var streams: [String] = []
        var seen = Set<String>()
        for c in commands where c.count > 6 && c[0] == "XADD" && c[2] == "MAXLEN" && c[6] == "requestId" {
            if seen.insert(c[1]).inserted { streams.append(c[1]) }
        }
        return commands + streams.map { ["PEXPIRE", $0, createdStreamTTLMilliseconds, "NX"] }
    }
}
