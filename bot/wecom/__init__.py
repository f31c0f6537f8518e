"""WeCom (企业微信): the API client, access tokens, callbacks."""
