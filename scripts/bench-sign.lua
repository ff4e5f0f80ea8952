-- wrk script: POST with the same body as a token request, to the sign-only baseline.
wrk.method = "POST"
wrk.body = "grant_type=client_credentials"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
