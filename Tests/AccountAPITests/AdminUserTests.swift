import JOSE
import Testing
import TokenTestSupport

/// `/admin/users` on the admin socket: create, list and search, show, activate/deactivate,
/// set-password and logout, seen through the dialects' routes.
@Suite("Admin user routes", .timeLimit(.minutes(2)))
struct AdminUserTests {
    @Test("create, list, search, show by public and numeric id, conflicts, not found")
    func createListShow() async throws {
        try await withDaemon("admin-users") { daemon in
            let ann = try await daemon.createUser(
                "Ann",
                " Ann@Example.COM ",
                "ann-password",
                extra: ["firstName": "Ann", "lastName": "Lee", "role": "admin"]
            )
            #expect(isHex24(ann.id), "a 24-hex public id")
            #expect(ann.numericID > 0)
            #expect(ann.email == "ann@example.com", "the email is normalised")
            #expect(ann.status == "active")
            let bob = try await daemon.createUser("bob", "bob@example.org", "bob-password")
            #expect(bob.numericID != ann.numericID && bob.id != ann.id)

            // Conflicts: username case-insensitively, email after normalisation.
            let sameName = try await daemon.admin(
                "POST",
                "/admin/users",
                json: jsonText(["username": "ANN", "email": "other@example.com", "password": "xx-password"])
            )
            #expect(sameName.status == 409, "username taken (case-insensitive): \(sameName.summary)")
            let sameEmail = try await daemon.admin(
                "POST",
                "/admin/users",
                json: jsonText(["username": "ann2", "email": "ANN@example.com", "password": "xx-password"])
            )
            #expect(sameEmail.status == 409, "email taken: \(sameEmail.summary)")
            let invalid = try await daemon.admin(
                "POST",
                "/admin/users",
                json: jsonText(["username": "c", "email": "not-an-email", "password": "abc"])
            )
            #expect(invalid.status == 400, "\(invalid.summary)")
            #expect(invalid.json?["error"] != nil)

            // List and search.
            let list = try await daemon.admin("GET", "/admin/users")
            #expect(list.status == 200, "\(list.summary)")
            let ids = Set(list.json?["users"]?.arrayValue?.compactMap { $0["id"]?.stringValue } ?? [])
            #expect(ids == [ann.id, bob.id])
            let passwordLeak = list.text.contains("argon2") || list.text.contains("password")
            #expect(!passwordLeak, "no password hash in the list")
            let byEmail = try await daemon.admin("GET", "/admin/users?email=example.org")
            #expect(
                byEmail.json?["users"]?.arrayValue?.compactMap { $0["id"]?.stringValue } == [bob.id],
                "search by email"
            )
            let byUsername = try await daemon.admin("GET", "/admin/users?username=ann")
            #expect(
                byUsername.json?["users"]?.arrayValue?.compactMap { $0["id"]?.stringValue } == [ann.id],
                "search by username"
            )
            let upper = try await daemon.admin("GET", "/admin/users?email=Example.ORG&username=BOB")
            #expect(
                upper.json?["users"]?.arrayValue?.compactMap { $0["id"]?.stringValue } == [bob.id],
                "search ignores case"
            )
            let page = try await daemon.admin("GET", "/admin/users?limit=1&offset=1")
            #expect(page.json?["users"]?.arrayValue?.count == 1, "limit and offset: \(page.summary)")
            #expect(try await daemon.admin("GET", "/admin/users?limit=0").status == 400)
            let none = try await daemon.admin("GET", "/admin/users?email=nobody%40nowhere.test")
            #expect(none.status == 200 && none.json?["users"] == .array([]), "\(none.summary)")

            // Show by public id and by numeric id: the same user.
            let byPublic = try await daemon.admin("GET", "/admin/users/\(ann.id)")
            let byNumeric = try await daemon.admin("GET", "/admin/users/\(ann.numericID)")
            #expect(byPublic.status == 200 && byNumeric.status == 200, "\(byPublic.summary) / \(byNumeric.summary)")
            #expect(byPublic.json == byNumeric.json)
            #expect(byPublic.json?["firstName"]?.stringValue == "Ann" && byPublic.json?["role"]?.stringValue == "admin")
            let missing = try await daemon.admin("GET", "/admin/users/ffffffffffffffffffffffff")
            #expect(missing.status == 404, "\(missing.summary)")
            #expect(try await daemon.admin("GET", "/admin/users/999999").status == 404)

            // The ids the dialects show are these.
            let appmixer = try await daemon.signedIn(.appmixer, username: "ann", password: "ann-password")
            #expect(
                appmixer["user"]?["id"]?.stringValue == ann.id,
                "username sign-in is case-insensitive; the public id"
            )
            let v1 = try await daemon.signedIn(.v1, email: "ANN@example.com", password: "ann-password")
            #expect(v1["user"]?["id"]?.numberValue?.int64Value == ann.numericID)
            #expect(v1["user"]?["rol"]?.stringValue == "admin")
            // Signing in sets lastLogin.
            let shown = try await daemon.admin("GET", "/admin/users/\(ann.id)")
            #expect(isISO8601(shown.json?["lastLogin"]?.stringValue))
        }
    }

    @Test("deactivate/activate, set-password and logout")
    func stateChanges() async throws {
        try await withDaemon("admin-state") { daemon in
            let carol = try await daemon.createUser("carol", "carol@example.com", "carol-password")
            func tokens() async throws -> (appmixer: String, classic: String, v1: String, refresh: String) {
                let a = try await daemon.signedIn(.appmixer, username: "carol", password: "carol-password")
                let c = try await daemon.signedIn(.classic, email: "carol@example.com", password: "carol-password")
                let v = try await daemon.signedIn(.v1, username: "carol", password: "carol-password")
                return (
                    a["token"]!.stringValue!, c["token"]!.stringValue!, v["accessToken"]!.stringValue!,
                    v["refreshToken"]!.stringValue!
                )
            }

            // Logout: every token inactive, the refresh token refused; sign-in still works.
            let before = try await tokens()
            let logout = try await daemon.admin("POST", "/admin/users/\(carol.id)/logout")
            #expect(logout.status == 200, "\(logout.summary)")
            for token in [before.appmixer, before.classic, before.v1] {
                #expect(!(try await daemon.isActive(token)), "inactive after logout")
            }
            expectError(try await daemon.v1Refresh(before.refresh), 401, .statusCode, "refresh after logout")
            let afterLogout = try await tokens()
            #expect(try await daemon.isActive(afterLogout.appmixer), "a new sign-in after logout works")

            // Logout by numeric id (the other routes take both).
            let byNumber = try await daemon.admin("POST", "/admin/users/\(carol.numericID)/logout")
            #expect(byNumber.status == 200, "\(byNumber.summary)")
            let stillActive = try await daemon.isActive(afterLogout.v1)
            #expect(!stillActive, "inactive after logout by numeric id")
            let unknown = try await daemon.admin("POST", "/admin/users/ffffffffffffffffffffffff/logout")
            #expect(unknown.status == 404, "\(unknown.summary)")

            // Set-password: the old password fails, the new works, old tokens are inactive.
            let current = try await tokens()
            let set = try await daemon.admin(
                "POST",
                "/admin/users/\(carol.id)/password",
                json: jsonText(["password": "carol-new-password"])
            )
            #expect(set.status == 200, "\(set.summary)")
            expectError(
                try await daemon.signIn(.appmixer, username: "carol", password: "carol-password"),
                401,
                .message,
                "old password"
            )
            expectError(
                try await daemon.signIn(.v1, username: "carol", password: "carol-password"),
                401,
                .statusCode,
                "old password"
            )
            for token in [current.appmixer, current.classic, current.v1] {
                #expect(!(try await daemon.isActive(token)), "inactive after a password change")
            }
            expectError(
                try await daemon.v1Refresh(current.refresh),
                401,
                .statusCode,
                "refresh after a password change"
            )
            let renewed = try await daemon.signedIn(
                .classic,
                email: "carol@example.com",
                password: "carol-new-password"
            )
            #expect(try await daemon.isActive(try #require(renewed["token"]?.stringValue)))
            let short = try await daemon.admin(
                "POST",
                "/admin/users/\(carol.id)/password",
                json: jsonText(["password": "abc"])
            )
            #expect(short.status == 400, "a 3-character password: \(short.summary)")
            let long = try await daemon.admin(
                "POST",
                "/admin/users/\(carol.id)/password",
                json: jsonText(["password": .string(String(repeating: "x", count: 1025))])
            )
            #expect(long.status == 400, "a 1025-byte password: \(long.summary)")
            let noUser = try await daemon.admin(
                "POST",
                "/admin/users/ffffffffffffffffffffffff/password",
                json: jsonText(["password": "whatever-pw"])
            )
            #expect(noUser.status == 404, "\(noUser.summary)")

            // Deactivate by numeric id, activate by public id.
            let off = try await daemon.admin("POST", "/admin/users/\(carol.numericID)/deactivate")
            #expect(off.status == 200 && off.json?["status"]?.stringValue == "inactive", "\(off.summary)")
            let listed = try await daemon.admin("GET", "/admin/users?status=inactive")
            #expect(listed.json?["users"]?.arrayValue?.compactMap { $0["id"]?.stringValue } == [carol.id])
            expectError(
                try await daemon.signIn(.classic, email: "carol@example.com", password: "carol-new-password"),
                403,
                .message
            )
            let on = try await daemon.admin("POST", "/admin/users/\(carol.id)/activate")
            #expect(on.status == 200 && on.json?["status"]?.stringValue == "active", "\(on.summary)")
            _ = try await daemon.signedIn(.classic, email: "carol@example.com", password: "carol-new-password")
            #expect(try await daemon.admin("POST", "/admin/users/ffffffffffffffffffffffff/deactivate").status == 404)
        }
    }
}
