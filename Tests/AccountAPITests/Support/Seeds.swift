/// The examples of the seed documents (../shared/seeds), verbatim but for what is marked:
/// these are the contract a client written against them relies on.
enum Seed {
    // MARK: appmixer (000, 001, 002)

    /// 000/001 `POST /user/auth` → 200.
    static let appmixerSignIn = """
        {
            "user": {
                "id": "5c88c7cc04a917256c726c3d",
                "username":"abc@example.com",
                "isActive": false,
                "email": "abc@example.com",
                "plan":"free",
                "vendor": null
            },
            "token":"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpZCI6IjVjODhjN2NjMDRhOTE3MjU2YzcyNmMzZCIsInNjb3BlIjpbInVzZXIiXSwiaWF0IjoxNTUyNDkyNjA5LCJleHAiOjE1NTUwODQ2MDl9.9jVcqY0qo9Q_1GeK9Fg14v7OrdpWvzmqnv4jDMZfqnI"
        }
        """

    /// 002 `POST /user/auth` → 200 (the later revision leaves `vendor` out).
    static let appmixerSignIn002 = """
        {
            "user": {
                "id": "5c88c7cc04a917256c726c3d",
                "username":"abc@example.com",
                "isActive": false,
                "email": "abc@example.com",
                "plan":"free"
            },
            "token":"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpZCI6IjVjODhjN2NjMDRhOTE3MjU2YzcyNmMzZCIsInNjb3BlIjpbInVzZXIiXSwiaWF0IjoxNTUyNDkyNjA5LCJleHAiOjE1NTUwODQ2MDl9.9jVcqY0qo9Q_1GeK9Fg14v7OrdpWvzmqnv4jDMZfqnI"
        }
        """

    /// 000/001 `POST /user` → 200. The document lacks the comma after `token`; added here.
    static let appmixerCreate = """
        {
            "token":"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpZCI6IjVjODhjN2NjMDRhOTE3MjU2YzcyNmMzZCIsInNjb3BlIjpbInVzZXIiXSwiaWF0IjoxNTUyNDkyNjA5LCJleHAiOjE1NTUwODQ2MDl9.9jVcqY0qo9Q_1GeK9Fg14v7OrdpWvzmqnv4jDMZfqnI",
            "user": {
                "id": "65699f8de6f980000739e6e0",
                "username": "abc",
                "isActive": false,
                "email": "abc@example.com",
                "plan": "free",
                "vendor": null
            }
        }
        """

    /// 002 `POST /user` → 200 (the later revision shows only the token).
    static let appmixerCreate002 = """
        {
            "token":"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpZCI6IjVjODhjN2NjMDRhOTE3MjU2YzcyNmMzZCIsInNjb3BlIjpbInVzZXIiXSwiaWF0IjoxNTUyNDkyNjA5LCJleHAiOjE1NTUwODQ2MDl9.9jVcqY0qo9Q_1GeK9Fg14v7OrdpWvzmqnv4jDMZfqnI"
        }
        """

    /// 000/001/002 `GET /user` → 200.
    static let appmixerUser = """
        {
          "id": "58593f07c3ee4f239dc69ff7",
          "username": "tomas@client.io",
          "isActive": true,
          "email": "tomas@client.io",
          "scope": [
            "user"
          ],
          "plan": "beta"
        }
        """

    /// 002: the two 429 bodies.
    static let signupLimitEmail =
        #"{"error":"Too many signup attempts for this email address. Please try again later."}"#
    static let signupLimitIP = #"{"error":"Too many signup attempts from your IP address. Please try again later."}"#

    /// Where appmixer leaves a type open: `vendor` is null in the examples, a string when set.
    static let appmixerAllow: [String: Set<String>] = ["user.vendor": ["null", "string"]]

    /// The sample token of 000–002 (HS256, expired 2019): claims `id`, `scope`, `iat`, `exp`; 30 days.
    static let appmixerToken =
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpZCI6IjVjODhjN2NjMDRhOTE3MjU2YzcyNmMzZCIsInNjb3BlIjpbInVzZXIiXSwiaWF0IjoxNTUyNDkyNjA5LCJleHAiOjE1NTUwODQ2MDl9.9jVcqY0qo9Q_1GeK9Fg14v7OrdpWvzmqnv4jDMZfqnI"

    // MARK: classic (003)

    /// 003 `POST /api/user/login` and `POST /api/user/signup` → 200.
    static let classic = """
        {
            "userId": "5ef5b4d2b56aad8240db229c",
            "email": "admin1@user.com",
            "userName": "admin1",
            "token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ1c2VySWQiOiI1ZWY1YjRkMmI1NmFhZDgyNDBkYjIyOWMiLCJ1c2VyTmFtZSI6ImFkbWluMSIsImVtYWlsIjoiYWRtaW4xQHVzZXIuY29tIiwiaWF0IjoxNTk0OTY3MDgxLCJleHAiOjE1OTQ5NzA2ODF9.DoHgM4XbGD94HHV-wFdL1vu__aAjs05oEAVMjB8gpS8"
        }
        """

    /// The sample token of 003: claims `userId`, `userName`, `email`, `iat`, `exp`; 1 hour.
    static let classicToken =
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ1c2VySWQiOiI1ZWY1YjRkMmI1NmFhZDgyNDBkYjIyOWMiLCJ1c2VyTmFtZSI6ImFkbWluMSIsImVtYWlsIjoiYWRtaW4xQHVzZXIuY29tIiwiaWF0IjoxNTk0OTY3MDgxLCJleHAiOjE1OTQ5NzA2ODF9.DoHgM4XbGD94HHV-wFdL1vu__aAjs05oEAVMjB8gpS8"

    // MARK: v1 (004)

    /// 004 `POST /api/v1/auths/sign-in` → 200, without the `"400": {}, "401": {}, "403": {}`
    /// members the document's renderer put in (they name its error examples, not members), and
    /// with `permissions` as the document's TypeScript interface types it (`string[]`; the JSON
    /// example shows `[{}]`).
    static let v1SignIn = """
        {
        "accessToken": "<string>",
        "refreshToken": "<string>",
        "user": {
        "id": 123,
        "username": "<string>",
        "email": "<string>",
        "firstName": "<string>",
        "lastName": "<string>",
        "rol": "<string>",
        "avatar": "<string>",
        "status": "<string>",
        "lastLogin": "<string>",
        "createdAt": "<string>",
        "permissions": [
        "<string>"
        ],
        "stats": {}
        }
        }
        """

    /// `permissions` may be empty; `stats` is a `Record<string, any>` (members free).
    static let v1Allow: [String: Set<String>] = ["user.permissions[]": ["string"], "user.stats": ["object"]]

    static let v1Unauthorized = #"{"statusCode":401,"message":"Invalid email or password"}"#
    static let v1Inactive = #"{"statusCode":403,"message":"Account is inactive. Contact administrator."}"#
    static let v1ShortPassword =
        #"{"statusCode":400,"message":"Validation failed","errors":["password must be at least 6 characters"]}"#
    static let v1NoIdentifier = "email or username must be provided"
}
