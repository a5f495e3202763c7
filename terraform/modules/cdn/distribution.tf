resource "aws_cloudfront_distribution" "this" {
  enabled         = true
  comment         = "Incus image registry ${var.name}"
  is_ipv6_enabled = true
  http_version    = "http2and3"
  price_class     = var.price_class
  aliases         = var.aliases
  # "/" serves the registry's index rather than asking S3 for the bucket
  # root (a listing, were CloudFront allowed s3:ListBucket).
  default_root_object = "${local.prefix}streams/v1/index.json"
  tags                = var.tags

  origin {
    origin_id                = local.origin_id
    domain_name              = var.bucket_regional_domain_name
    origin_access_control_id = aws_cloudfront_origin_access_control.this.id
  }

  # Anything else in the bucket: the bucket policy lets CloudFront read
  # only images/* and streams/v1/*, so this answers 403.
  default_cache_behavior {
    target_origin_id           = local.origin_id
    viewer_protocol_policy     = var.viewer_protocol_policy
    allowed_methods            = local.read_methods
    cached_methods             = local.read_methods
    cache_policy_id            = aws_cloudfront_cache_policy.catalog.id
    response_headers_policy_id = aws_cloudfront_response_headers_policy.this.id
    compress                   = false
  }

  ordered_cache_behavior {
    path_pattern               = "${local.prefix}images/*"
    target_origin_id           = local.origin_id
    viewer_protocol_policy     = var.viewer_protocol_policy
    allowed_methods            = local.read_methods
    cached_methods             = local.read_methods
    cache_policy_id            = aws_cloudfront_cache_policy.images.id
    response_headers_policy_id = aws_cloudfront_response_headers_policy.this.id
    compress                   = false
  }

  ordered_cache_behavior {
    path_pattern               = "${local.prefix}streams/v1/*"
    target_origin_id           = local.origin_id
    viewer_protocol_policy     = var.viewer_protocol_policy
    allowed_methods            = local.read_methods
    cached_methods             = local.read_methods
    cache_policy_id            = aws_cloudfront_cache_policy.catalog.id
    response_headers_policy_id = aws_cloudfront_response_headers_policy.this.id
    compress                   = true
  }

  dynamic "logging_config" {
    for_each = var.logging_bucket == null ? [] : [var.logging_bucket]
    content {
      bucket          = logging_config.value
      prefix          = var.logging_prefix
      include_cookies = false
    }
  }

  restrictions {
    geo_restriction {
      restriction_type = "none"
    }
  }

  # The *.cloudfront.net certificate, or the custom domain's ACM
  # certificate (us-east-1) with TLS 1.2 at least.
  viewer_certificate {
    cloudfront_default_certificate = var.acm_certificate_arn == null
    acm_certificate_arn            = var.acm_certificate_arn
    ssl_support_method             = var.acm_certificate_arn == null ? null : "sni-only"
    minimum_protocol_version       = var.acm_certificate_arn == null ? "TLSv1" : "TLSv1.2_2021"
  }
}
