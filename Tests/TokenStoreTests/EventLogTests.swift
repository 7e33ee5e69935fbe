import Testing
import TokenStore
import TokenTestSupport

@Suite("The append-only event log and its cursor")
struct EventLogTests {
    let now = StoreFixtures.now

    @Test("appended events read back in order with rising sequences", arguments: StoreKind.allCases)
    func appendAndRead(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            try await store.appendEvent(kind: "key_rotated", subject: nil, detail: "current=k2", at: now)
            try await store.appendEvent(kind: "sign_in", subject: "user-1", detail: "dialect=v1", at: now + 0.5)
            try await store.revokeKey(kid: "k1", at: now + 1, reason: "compromise")
            let events = try await store.allEvents()
            #expect(events.map(\.kind) == ["key_rotated", "sign_in", "revoke_key"])
            #expect(events.map(\.sequence) == [1, 2, 3])
            #expect(
                events[1]
                    == TokenEvent(sequence: 2, at: now + 0.5, kind: "sign_in", subject: "user-1", detail: "dialect=v1")
            )
            #expect(events[0].subject == nil)
        }
    }

    @Test("paging with after: and limit: walks every event exactly once", arguments: StoreKind.allCases)
    func paging(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            for index in 0..<7 {
                try await store.appendEvent(kind: "tick", subject: nil, detail: "\(index)", at: now + Double(index))
            }
            var cursor: Int64 = 0
            var seen: [String] = []
            var pages = 0
            while true {
                let page = try await store.events(after: cursor, limit: 3)
                if page.isEmpty { break }
                #expect(page.count <= 3)
                #expect(page.first!.sequence > cursor)
                seen += page.map(\.detail)
                cursor = page.last!.sequence
                pages += 1
            }
            #expect(seen == (0..<7).map(String.init))
            #expect(pages == 3)
            #expect(try await store.events(after: 2, limit: 2).map(\.detail) == ["2", "3"])
            #expect(try await store.events(after: 0, limit: 0).isEmpty)
            #expect(try await store.events(after: 0, limit: -1).isEmpty)
            #expect(try await store.events(after: 100, limit: 10).isEmpty)
        }
    }

    @Test("trimmed events never give their sequence to a new one", arguments: StoreKind.allCases)
    func retentionKeepsCursorMonotonic(kind: StoreKind) async throws {
        try await withStore(kind, eventRetention: 3600) { store in
            try await store.appendEvent(kind: "old", subject: nil, detail: "a", at: now - 7200)
            try await store.appendEvent(kind: "old", subject: nil, detail: "b", at: now - 3601)
            try await store.appendEvent(kind: "recent", subject: nil, detail: "c", at: now - 60)
            #expect(try await store.compact(now: now) == 2)
            let events = try await store.allEvents()
            #expect(events.map(\.kind) == ["recent", "compacted"])
            #expect(events.map(\.sequence) == [3, 4])
            #expect(events.last?.detail == "access=0 families=0 tokens=0 events=2")
            #expect(try await store.loadRevocations(now: now).cursor == 4)
        }
    }

    @Test("without a retention, compaction keeps every event", arguments: StoreKind.allCases)
    func noRetentionKeepsEvents(kind: StoreKind) async throws {
        try await withStore(kind) { store in
            try await store.appendEvent(kind: "old", subject: nil, detail: "a", at: 0)
            #expect(try await store.compact(now: now) == 0)
            #expect(try await store.allEvents().map(\.kind) == ["old"])
        }
    }
}
