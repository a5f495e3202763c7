# modules/cdn on a mocked provider: origin access control, the two cache
# policies, GET/HEAD over HTTPS only, and the certificate choices.

mock_provider "aws" {
  mock_resource "aws_cloudfront_distribution" {
    defaults = {
      id          = "E2EXAMPLE"
      arn         = "arn:aws:cloudfront::123456789012:distribution/E2EXAMPLE"
      domain_name = "d111111abcdef8.cloudfront.net"
    }
  }
}

variables {
  name                        = "registry-test"
  bucket_regional_domain_name = "registry-test.s3.eu-west-1.amazonaws.com"
}

run "defaults" {
  module {
    source = "./modules/cdn"
  }

  assert {
    condition = (
      aws_cloudfront_origin_access_control.this.origin_access_control_origin_type == "s3" &&
      aws_cloudfront_origin_access_control.this.signing_behavior == "always" &&
      aws_cloudfront_origin_access_control.this.signing_protocol == "sigv4"
    )
    error_message = "The origin must be reached through an S3 origin access control that always signs (SigV4)."
  }

  assert {
    condition = (
      one(aws_cloudfront_distribution.this.origin).domain_name == var.bucket_regional_domain_name &&
      one(aws_cloudfront_distribution.this.origin).origin_access_control_id == aws_cloudfront_origin_access_control.this.id
    )
    error_message = "The one origin is the bucket's regional domain name, through the origin access control."
  }

  assert {
    condition = (
      aws_cloudfront_cache_policy.catalog.min_ttl == 0 &&
      aws_cloudfront_cache_policy.catalog.default_ttl == 60 &&
      aws_cloudfront_cache_policy.catalog.max_ttl == 60
    )
    error_message = "The catalog is cached 60 s by default."
  }

  assert {
    condition = (
      aws_cloudfront_cache_policy.images.min_ttl == 31536000 &&
      aws_cloudfront_cache_policy.images.default_ttl == 31536000 &&
      aws_cloudfront_cache_policy.images.max_ttl == 31536000
    )
    error_message = "Image files are cached a year."
  }

  assert {
    condition = (
      aws_cloudfront_distribution.this.ordered_cache_behavior[0].path_pattern == "images/*" &&
      aws_cloudfront_distribution.this.ordered_cache_behavior[0].cache_policy_id == aws_cloudfront_cache_policy.images.id &&
      !aws_cloudfront_distribution.this.ordered_cache_behavior[0].compress &&
      aws_cloudfront_distribution.this.ordered_cache_behavior[1].path_pattern == "streams/v1/*" &&
      aws_cloudfront_distribution.this.ordered_cache_behavior[1].cache_policy_id == aws_cloudfront_cache_policy.catalog.id &&
      aws_cloudfront_distribution.this.ordered_cache_behavior[1].compress &&
      !aws_cloudfront_distribution.this.default_cache_behavior[0].compress
    )
    error_message = "images/* gets the long policy, streams/v1/* the short one; only the JSON is compressed."
  }

  assert {
    condition = alltrue([
      for b in concat(aws_cloudfront_distribution.this.default_cache_behavior, aws_cloudfront_distribution.this.ordered_cache_behavior) :
      b.viewer_protocol_policy == "redirect-to-https" && b.allowed_methods == toset(["GET", "HEAD"]) && b.cached_methods == toset(["GET", "HEAD"]) &&
      b.response_headers_policy_id == aws_cloudfront_response_headers_policy.this.id
    ])
    error_message = "Every behaviour: GET/HEAD only, redirect to HTTPS, security headers."
  }

  assert {
    condition = (
      aws_cloudfront_distribution.this.http_version == "http2and3" &&
      aws_cloudfront_distribution.this.is_ipv6_enabled &&
      aws_cloudfront_distribution.this.price_class == "PriceClass_100" &&
      aws_cloudfront_distribution.this.default_root_object == "streams/v1/index.json"
    )
    error_message = "HTTP/2 and 3, IPv6, PriceClass_100 and the index as root object by default."
  }

  assert {
    condition = (
      aws_cloudfront_response_headers_policy.this.security_headers_config[0].strict_transport_security[0].access_control_max_age_sec >= 31536000 &&
      aws_cloudfront_response_headers_policy.this.security_headers_config[0].content_type_options[0].override
    )
    error_message = "Responses carry HSTS (a year or more) and nosniff."
  }

  assert {
    condition     = aws_cloudfront_distribution.this.viewer_certificate[0].cloudfront_default_certificate && length(aws_cloudfront_distribution.this.logging_config) == 0
    error_message = "Without a custom domain: the cloudfront.net certificate; logging off by default."
  }

  assert {
    condition     = output.registry_url == "https://d111111abcdef8.cloudfront.net"
    error_message = "The registry URL is the distribution's domain."
  }
}

run "custom_domain_prefix_logging" {
  module {
    source = "./modules/cdn"
  }

  variables {
    registry_prefix        = "incus"
    aliases                = ["images.example.org"]
    acm_certificate_arn    = "arn:aws:acm:us-east-1:123456789012:certificate/0a1b2c3d-1234-5678-9abc-def012345678"
    viewer_protocol_policy = "https-only"
    catalog_ttl            = 30
    price_class            = "PriceClass_All"
    logging_bucket         = "registry-logs.s3.amazonaws.com"
  }

  assert {
    condition = (
      aws_cloudfront_distribution.this.viewer_certificate[0].acm_certificate_arn == var.acm_certificate_arn &&
      aws_cloudfront_distribution.this.viewer_certificate[0].ssl_support_method == "sni-only" &&
      aws_cloudfront_distribution.this.viewer_certificate[0].minimum_protocol_version == "TLSv1.2_2021" &&
      aws_cloudfront_distribution.this.aliases == toset(["images.example.org"])
    )
    error_message = "A custom domain uses its ACM certificate, SNI and TLS 1.2 (2021 ciphers) at least."
  }

  assert {
    condition = (
      aws_cloudfront_distribution.this.ordered_cache_behavior[0].path_pattern == "incus/images/*" &&
      aws_cloudfront_distribution.this.ordered_cache_behavior[1].path_pattern == "incus/streams/v1/*" &&
      aws_cloudfront_distribution.this.default_root_object == "incus/streams/v1/index.json"
    )
    error_message = "Under a prefix, the path patterns carry it (viewer path = \"/\" + object key)."
  }

  assert {
    condition     = alltrue([for b in concat(aws_cloudfront_distribution.this.default_cache_behavior, aws_cloudfront_distribution.this.ordered_cache_behavior) : b.viewer_protocol_policy == "https-only"])
    error_message = "viewer_protocol_policy applies to every behaviour."
  }

  assert {
    condition     = aws_cloudfront_cache_policy.catalog.default_ttl == 30 && aws_cloudfront_cache_policy.catalog.max_ttl == 30
    error_message = "catalog_ttl sets the catalog's cache time."
  }

  assert {
    condition     = one(aws_cloudfront_distribution.this.logging_config).bucket == "registry-logs.s3.amazonaws.com" && !one(aws_cloudfront_distribution.this.logging_config).include_cookies
    error_message = "logging_bucket turns access logs on."
  }

  assert {
    condition     = output.registry_url == "https://images.example.org/incus"
    error_message = "The registry URL is the first alias plus the prefix."
  }
}

run "rejects_aliases_without_certificate" {
  command = plan
  module {
    source = "./modules/cdn"
  }
  variables {
    aliases = ["images.example.org"]
  }
  expect_failures = [var.aliases]
}

run "rejects_certificate_outside_us_east_1" {
  command = plan
  module {
    source = "./modules/cdn"
  }
  variables {
    aliases             = ["images.example.org"]
    acm_certificate_arn = "arn:aws:acm:eu-west-1:123456789012:certificate/0a1b2c3d-1234-5678-9abc-def012345678"
  }
  expect_failures = [var.acm_certificate_arn]
}

run "rejects_allow_all" {
  command = plan
  module {
    source = "./modules/cdn"
  }
  variables {
    viewer_protocol_policy = "allow-all"
  }
  expect_failures = [var.viewer_protocol_policy]
}

run "rejects_catalog_ttl_over_an_hour" {
  command = plan
  module {
    source = "./modules/cdn"
  }
  variables {
    catalog_ttl = 7200
  }
  expect_failures = [var.catalog_ttl]
}

run "rejects_short_images_ttl" {
  command = plan
  module {
    source = "./modules/cdn"
  }
  variables {
    images_ttl = 3600
  }
  expect_failures = [var.images_ttl]
}

run "rejects_unknown_price_class" {
  command = plan
  module {
    source = "./modules/cdn"
  }
  variables {
    price_class = "PriceClass_50"
  }
  expect_failures = [var.price_class]
}
