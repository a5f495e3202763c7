variable "name" {
  description = "Name for the CloudFront resources (origin access control, cache and response headers policies); unique in the account."
  type        = string

  validation {
    condition     = can(regex("^[a-zA-Z0-9_-]{1,48}$", var.name))
    error_message = "name must be 1 to 48 letters, digits, '-' or '_'."
  }
}

variable "bucket_regional_domain_name" {
  description = "Regional domain name of the registry bucket (the origin)."
  type        = string
}

variable "registry_prefix" {
  description = "Key prefix the registry lives under (\"\" for the whole bucket). It is part of the URL too: the registry is served at https://DOMAIN/PREFIX, so a viewer path is always \"/\" + the object key."
  type        = string
  default     = ""

  validation {
    condition     = var.registry_prefix == "" || can(regex("^[A-Za-z0-9_-][A-Za-z0-9._-]*(/[A-Za-z0-9_-][A-Za-z0-9._-]*)*$", var.registry_prefix))
    error_message = "registry_prefix must be empty or slash-separated segments of ASCII letters, digits, '.', '_' or '-' (as publish accepts: no segment starting with '.', no leading or trailing slash)."
  }
}

variable "catalog_ttl" {
  description = "Longest time, in seconds, CloudFront keeps streams/v1/*.json (publish writes them with max-age=60, so more than 60 changes nothing). Incus daemons add their own hour: prune's --grace must exceed 1h + this."
  type        = number
  default     = 60

  validation {
    condition     = var.catalog_ttl >= 0 && var.catalog_ttl <= 3600 && floor(var.catalog_ttl) == var.catalog_ttl
    error_message = "catalog_ttl must be a whole number of seconds from 0 to 3600 (prune's default 2h grace covers 1h of Incus cache plus at most 1h of CDN)."
  }
}

variable "images_ttl" {
  description = "Time, in seconds, CloudFront keeps an image file (min, default and max TTL): the files are content-addressed and never change."
  type        = number
  default     = 31536000

  validation {
    condition     = var.images_ttl >= 86400 && floor(var.images_ttl) == var.images_ttl
    error_message = "images_ttl must be a whole number of seconds, at least one day: image files never change."
  }
}

variable "price_class" {
  description = "CloudFront price class: PriceClass_100 (North America, Europe), PriceClass_200 or PriceClass_All."
  type        = string
  default     = "PriceClass_100"

  validation {
    condition     = contains(["PriceClass_100", "PriceClass_200", "PriceClass_All"], var.price_class)
    error_message = "price_class must be PriceClass_100, PriceClass_200 or PriceClass_All."
  }
}

variable "viewer_protocol_policy" {
  description = "redirect-to-https (Incus first tries plain http:// for image files, then follows the redirect) or https-only (that first try gets a 403 and Incus falls back to https://)."
  type        = string
  default     = "redirect-to-https"

  validation {
    condition     = contains(["redirect-to-https", "https-only"], var.viewer_protocol_policy)
    error_message = "viewer_protocol_policy must be redirect-to-https or https-only."
  }
}

variable "aliases" {
  description = "Custom domain names (e.g. [\"images.example.org\"]); they need acm_certificate_arn. Point them (CNAME or alias record) at the distribution's domain name."
  type        = list(string)
  default     = []

  validation {
    condition     = length(var.aliases) == 0 || var.acm_certificate_arn != null
    error_message = "aliases need acm_certificate_arn: a certificate in us-east-1 covering every alias."
  }
}

variable "acm_certificate_arn" {
  description = "ACM certificate for the aliases; it must be in us-east-1 (CloudFront's only region for certificates). null uses the *.cloudfront.net certificate."
  type        = string
  default     = null

  validation {
    condition     = var.acm_certificate_arn == null || can(regex("^arn:aws[a-z-]*:acm:us-east-1:[0-9]{12}:certificate/[0-9a-f-]+$", var.acm_certificate_arn))
    error_message = "acm_certificate_arn must be an ACM certificate ARN in us-east-1 (arn:aws:acm:us-east-1:ACCOUNT:certificate/ID)."
  }
}

variable "logging_bucket" {
  description = "Domain name of an existing bucket for CloudFront standard access logs (e.g. \"my-logs.s3.amazonaws.com\"; it needs ACLs enabled); null turns logging off."
  type        = string
  default     = null

  validation {
    condition     = var.logging_bucket == null || can(regex("\\.s3\\.([a-z0-9-]+\\.)?amazonaws\\.com$", var.logging_bucket))
    error_message = "logging_bucket must be a bucket domain name such as my-logs.s3.amazonaws.com."
  }
}

variable "logging_prefix" {
  description = "Key prefix of the access logs in logging_bucket."
  type        = string
  default     = "cloudfront/"
}

variable "tags" {
  description = "Tags for the distribution."
  type        = map(string)
  default     = {}
}
