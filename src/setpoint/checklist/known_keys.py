"""SECRET_KEY values that Superset's docs, templates and docker setups have shipped.

Anyone who knows one can forge a session cookie for an instance that kept it
(CVE-2023-27524). `setpoint check` signs a cookie with each and expects it to be refused.
"""

KNOWN_DEFAULT_KEYS = {
    "Superset < 1.4 default": "\x02\x01thisismyscretkey\x01\x02\\e\\y\\y\\h",
    "Superset >= 1.4 default": "CHANGE_ME_TO_A_COMPLEX_RANDOM_SECRET",
    "docker-compose .env": "thisISaSECRET_1234",
    "docs example": "YOUR_OWN_RANDOM_GENERATED_SECRET_KEY",
    "docker .env-non-dev": "TEST_NON_DEV_SECRET",
}
