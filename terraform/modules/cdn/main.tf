# CloudFront in front of the private bucket: image files cached for a long
# time (content-addressed, immutable), the two catalog files for catalog_ttl
# seconds; GET and HEAD only, HTTPS for every viewer.

locals {
  prefix    = var.registry_prefix == "" ? "" : "${var.registry_prefix}/"
  origin_id = "registry-bucket"
  # read_methods are the only methods viewers may use, and the only ones
  # cached.
  read_methods = ["GET", "HEAD"]
}

# CloudFront signs every origin request (SigV4); the bucket policy lets
# only this distribution read.
resource "aws_cloudfront_origin_access_control" "this" {
  name                              = var.name
  description                       = "Reads the ${var.name} registry bucket"
  origin_access_control_origin_type = "s3"
  signing_behavior                  = "always"
  signing_protocol                  = "sigv4"
}

# images/*: never changes once written; no cookies, headers or query
# strings in the key, and no compression (Incus must get the exact bytes
# its sha256 covers).
resource "aws_cloudfront_cache_policy" "images" {
  name        = "${var.name}-images"
  comment     = "Content-addressed image files: cached for images_ttl"
  min_ttl     = var.images_ttl
  default_ttl = var.images_ttl
  max_ttl     = var.images_ttl

  parameters_in_cache_key_and_forwarded_to_origin {
    enable_accept_encoding_gzip   = false
    enable_accept_encoding_brotli = false

    cookies_config {
      cookie_behavior = "none"
    }
    headers_config {
      header_behavior = "none"
    }
    query_strings_config {
      query_string_behavior = "none"
    }
  }
}

# streams/v1/*: rewritten on every publish; cached catalog_ttl seconds at
# most (the objects say max-age=60), compressed for viewers that accept it.
resource "aws_cloudfront_cache_policy" "catalog" {
  name        = "${var.name}-catalog"
  comment     = "Catalog JSON: cached at most catalog_ttl seconds"
  min_ttl     = 0
  default_ttl = var.catalog_ttl
  max_ttl     = var.catalog_ttl

  parameters_in_cache_key_and_forwarded_to_origin {
    enable_accept_encoding_gzip   = true
    enable_accept_encoding_brotli = true

    cookies_config {
      cookie_behavior = "none"
    }
    headers_config {
      header_behavior = "none"
    }
    query_strings_config {
      query_string_behavior = "none"
    }
  }
}

resource "aws_cloudfront_response_headers_policy" "this" {
  name    = "${var.name}-security"
  comment = "HSTS and nosniff on every response"

  security_headers_config {
    strict_transport_security {
      access_control_max_age_sec = 63072000
      include_subdomains         = false
      preload                    = false
      override                   = true
    }
    content_type_options {
      override = true
    }
  }
}
