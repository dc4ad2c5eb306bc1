// Fuzz target "request": RequestDecoder.decode (SPEC 5/6) over entry field lists built from the bytes.
//
//   input:  [selector] key NUL value NUL key NUL value ...
//   - a first byte 0x01...0x1F is a selector, not text: it prepends `type <command>` (the command chosen by
//     its value, so that mutations reach every command), and its bit 0x10 makes the decoder use tiny limits
//     (every too_large path); the rest is the field list.
//   - the rest is split at NUL bytes into key, value, key, value...; a trailing key gets an empty value. Keys and
//     values are read as UTF-8 (invalid sequences become U+FFFD, as a Redis field decoded to a String does).
//
// Checked: decode only throws DEEError (typed throws), every error has a message and, for bad_request, a field;
// an accepted entry's fingerprint is the same when its decoded arguments are sent again as one `args` JSON
// object (the two forms are one command), and the re-sent form decodes to the same request kind.

let prefix = "dee"
let defaultDecoder = RequestDecoder(prefix: prefix)
let tinyDecoder: RequestDecoder = {
    var l = Limits()
    l.maxEntryBytes = 300
    l.maxContacts = 2
    l.maxLimit = 3
    l.maxTickCount = 5
    l.maxRequestIdLength = 8
    return RequestDecoder(prefix: prefix, limits: l)
}()
let commandNames = RequestDecoder.commandNames

@_cdecl("LLVMFuzzerTestOneInput")
public func requestFuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let all = UnsafeBufferPointer(start: data, count: size)
    var fields: [(String, String)] = []
    var decoder = defaultDecoder
    var body = all[...]
    if let first = all.first, first >= 0x01, first <= 0x1F {
        fields.append(("type", commandNames[Int(first & 0x0F) % commandNames.count]))
        if first & 0x10 != 0 { decoder = tinyDecoder }
        body = all.dropFirst()
    }
    var tokens: [String] = []
    var start = body.startIndex
    for i in body.indices where body[i] == 0 {
        tokens.append(String(decoding: UnsafeBufferPointer(rebasing: body[start..<i]), as: UTF8.self))
        start = i + 1
    }
    if start < body.endIndex || !tokens.isEmpty {
        tokens.append(String(decoding: UnsafeBufferPointer(rebasing: body[start..<body.endIndex]), as: UTF8.self))
    }
    var k = 0
    while k < tokens.count, fields.count < 64 {
        fields.append((tokens[k], k + 1 < tokens.count ? tokens[k + 1] : ""))
        k += 2
    }
    check(fields, decoder)
    return 0
}

func check(_ fields: [(String, String)], _ decoder: RequestDecoder) {
    let h = decoder.header(fields)
    let envelope: Envelope
    do {
        envelope = try decoder.decode(fields)
    } catch {
        checkError(error)
        return
    }
    if let r = h.replyTo, !decoder.validReplyTo(r) { violated("an entry with a bad replyTo was accepted", r) }
    guard envelope.type == h.type, envelope.requestId == h.requestId, envelope.replyTo == h.replyTo else {
        violated("the envelope does not carry the entry's header")
    }
    for v in envelope.arguments.values { checkCanonical(v) }
    // The same command as one args field.
    var resent: [(String, String)] = []
    for (key, value) in fields where ["type", "requestId", "replyTo", "actor"].contains(key) { resent.append((key, value)) }
    resent.append(("args", JSONValue.object(envelope.arguments).canonical))
    let again: Envelope
    do {
        again = try defaultDecoder.decode(resent)
    } catch {
        violated("an accepted entry is refused when its arguments are sent as args", "\(error) for \(resent)")
    }
    guard again.fingerprint == envelope.fingerprint else {
        violated("fields and args forms have different fingerprints", "\(fields) vs \(resent)")
    }
    guard kind(again.request) == kind(envelope.request) else { violated("fields and args forms decode differently") }
    switch envelope.request {
    case .registerPlan(let p), .execute(plan: .inline(let p), _, _, _, _), .bulkExecute(plan: .inline(let p), _, _, _):
        guard Identifier.isValid(p.id), !p.steps.isEmpty else { violated("an accepted inline plan is not valid") }
    case .execute(_, _, let contactId, _, _):
        guard Identifier.isValid(contactId) else { violated("an accepted contact id is not an id", contactId) }
    default:
        break
    }
}

/// The request's case name (nil for the cases without a payload).
func kind(_ r: Request) -> String? { Mirror(reflecting: r).children.first?.label }
