variable "region" {
  description = "Region of the bucket (CloudFront and IAM are global)."
  type        = string
  default     = "us-east-1"
}

variable "name" {
  description = "Name of the registry: prefix of the CloudFront policies and IAM roles, unique in the account."
  type        = string
  default     = "appliance-registry"

  validation {
    condition     = can(regex("^[a-zA-Z0-9_-]{1,48}$", var.name))
    error_message = "name must be 1 to 48 letters, digits, '-' or '_'."
  }
}

variable "bucket_name" {
  description = "Name of the private bucket (globally unique)."
  type        = string
}

variable "registry_prefix" {
  description = "Key prefix of the registry in the bucket (\"\" for the whole bucket), as in `publish --bucket s3://BUCKET/PREFIX`. The registry URL ends with it: https://DOMAIN/PREFIX."
  type        = string
  default     = ""

  validation {
    condition     = var.registry_prefix == "" || can(regex("^[A-Za-z0-9_-][A-Za-z0-9._-]*(/[A-Za-z0-9_-][A-Za-z0-9._-]*)*$", var.registry_prefix))
    error_message = "registry_prefix must be empty or slash-separated segments of ASCII letters, digits, '.', '_' or '-' (as publish accepts: no segment starting with '.', no leading or trailing slash)."
  }
}

variable "remote_name" {
  description = "Remote name used in the `incus remote add` line of the outputs."
  type        = string
  default     = "appliance"
}

variable "aws_only_resources" {
  description = "Create everything (true). false creates only what an S3-compatible store such as MinIO supports: the bucket with versioning and encryption; no public access block, ownership controls, lifecycle, bucket policy, CloudFront or IAM."
  type        = bool
  default     = true
}

variable "force_destroy" {
  description = "Let `terraform destroy` delete the bucket with everything in it. Keep false in production."
  type        = bool
  default     = false
}

variable "kms_key_arn" {
  description = "KMS key for SSE-KMS (null: SSE-S3 AES256). Its key policy must let the distribution (cloudfront.amazonaws.com with AWS:SourceArn) decrypt."
  type        = string
  default     = null
}

variable "noncurrent_version_days" {
  description = "Days an overwritten catalog or deleted image file stays restorable."
  type        = number
  default     = 30
}

variable "enforce_conditional_writes" {
  description = "Bucket-policy Deny of writes without If-None-Match (images/*) or If-Match/If-None-Match (streams/v1/*)."
  type        = bool
  default     = true
}

variable "cloudfront_list_bucket" {
  description = "Grant CloudFront s3:ListBucket so that a missing key is a 404 (cached briefly) instead of a 403."
  type        = bool
  default     = false
}

variable "catalog_ttl" {
  description = "Longest CloudFront cache time of streams/v1/*.json in seconds (objects carry max-age=60). prune's --grace must exceed 1h (Incus daemons) + this."
  type        = number
  default     = 60
}

variable "images_ttl" {
  description = "CloudFront cache time of image files in seconds (immutable)."
  type        = number
  default     = 31536000
}

variable "price_class" {
  description = "CloudFront price class."
  type        = string
  default     = "PriceClass_100"
}

variable "viewer_protocol_policy" {
  description = "redirect-to-https or https-only."
  type        = string
  default     = "redirect-to-https"
}

variable "aliases" {
  description = "Custom domain names for the registry (need acm_certificate_arn)."
  type        = list(string)
  default     = []
}

variable "acm_certificate_arn" {
  description = "ACM certificate in us-east-1 covering the aliases; null uses *.cloudfront.net."
  type        = string
  default     = null
}

variable "logging_bucket" {
  description = "Bucket domain name for CloudFront access logs; null: no logs."
  type        = string
  default     = null
}

variable "publisher_principals" {
  description = "Who may assume the publisher role: { aws_arns = [...] } and/or { github_oidc_provider_arn = ..., github_subjects = [\"repo:ORG/REPO:ref:refs/heads/main\"] }. null: policies only, no roles."
  type = object({
    aws_arns                 = optional(list(string), [])
    github_oidc_provider_arn = optional(string)
    github_subjects          = optional(list(string), [])
  })
  default = null
}

variable "prune_principals" {
  description = "Who may assume the prune role (same shape); null: the publisher principals."
  type = object({
    aws_arns                 = optional(list(string), [])
    github_oidc_provider_arn = optional(string)
    github_subjects          = optional(list(string), [])
  })
  default = null
}

variable "tags" {
  description = "Tags for every resource (provider default_tags)."
  type        = map(string)
  default     = {}
}
