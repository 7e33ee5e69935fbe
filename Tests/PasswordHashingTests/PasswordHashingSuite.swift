import Testing

/// Every password hashing test runs one at a time: the timing test compares medians, and the
/// pool tests count on idle workers, so they must not compete with each other for the cores.
@Suite("Password hashing", .serialized)
struct PasswordHashingSuite {}
