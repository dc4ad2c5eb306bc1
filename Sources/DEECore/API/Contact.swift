/// The person a plan runs for (SPEC 1): `{"id": "contact_123", "email": "jane@example.com", …attributes}`. On the
/// wire it is one flat JSON object; ``attributes`` holds every key but `id` and `email`, which plans read as
/// `{{contact.x}}` and branches as `contact.x`.
public struct Contact: Sendable, Hashable, Codable, Identifiable {
    /// The contact id: 1-128 characters of `A-Z a-z 0-9 . _ - @ +`.
    public var id: String
    /// The contact's email address, when it has one.
    public var email: String?
    /// Every other attribute.
    public var attributes: [String: JSONValue]

    /// A contact; `attributes` must not repeat `id` or `email` (those fields win).
    public init(id: String, email: String? = nil, attributes: [String: JSONValue] = [:]) {
        self.id = id
        self.email = email
        self.attributes = attributes
    }

    /// A contact from its JSON object; nil when it is not an object with a string `id`.
    public init?(json: JSONValue) {
        guard var o = json.object, let id = o.removeValue(forKey: "id")?.string else { return nil }
        let email = o.removeValue(forKey: "email")
        guard email == nil || email == .null || email?.string != nil else { return nil }
        self.init(id: id, email: email?.string, attributes: o)
    }

    /// An attribute, `id` and `email` included.
    public subscript(key: String) -> JSONValue? {
        switch key {
        case "id": return .string(id)
        case "email": return email.map(JSONValue.string)
        default: return attributes[key]
        }
    }

    /// The flat JSON object the engine takes.
    public var json: JSONValue {
        var o = attributes
        o["id"] = .string(id)
        if let email { o["email"] = .string(email) }
        return .object(o)
    }

    /// Decodes the flat object.
    public init(from decoder: any Decoder) throws {
        let value = try JSONValue(from: decoder)
        guard let contact = Contact(json: value) else {
            throw DecodingError.dataCorrupted(
                .init(codingPath: decoder.codingPath, debugDescription: "a contact is an object with a string id"))
        }
        self = contact
    }

    /// Encodes the flat object.
    public func encode(to encoder: any Encoder) throws { try json.encode(to: encoder) }
}
