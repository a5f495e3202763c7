# modules/bucket on a mocked provider: private, versioned, encrypted, with
# lifecycle rules and a policy that lets only the distribution read the
# registry and forces conditional writes.

mock_provider "aws" {
  mock_resource "aws_s3_bucket" {
    defaults = {
      arn                         = "arn:aws:s3:::registry-test"
      bucket_regional_domain_name = "registry-test.s3.eu-west-1.amazonaws.com"
    }
  }
}

variables {
  bucket_name                 = "registry-test"
  cloudfront_distribution_arn = "arn:aws:cloudfront::123456789012:distribution/E2EXAMPLE"
}

run "private_versioned_encrypted" {
  module {
    source = "./modules/bucket"
  }

  assert {
    condition = alltrue([
      aws_s3_bucket_public_access_block.this[0].block_public_acls,
      aws_s3_bucket_public_access_block.this[0].block_public_policy,
      aws_s3_bucket_public_access_block.this[0].ignore_public_acls,
      aws_s3_bucket_public_access_block.this[0].restrict_public_buckets,
    ])
    error_message = "All four public access blocks must be on."
  }

  assert {
    condition     = aws_s3_bucket_ownership_controls.this[0].rule[0].object_ownership == "BucketOwnerEnforced"
    error_message = "ACLs must be disabled (BucketOwnerEnforced)."
  }

  assert {
    condition     = aws_s3_bucket_versioning.this.versioning_configuration[0].status == "Enabled"
    error_message = "Versioning must be on."
  }

  assert {
    condition     = one(one(aws_s3_bucket_server_side_encryption_configuration.this.rule).apply_server_side_encryption_by_default).sse_algorithm == "AES256"
    error_message = "Default encryption must be SSE-S3 (AES256)."
  }

  assert {
    condition     = aws_s3_bucket_lifecycle_configuration.this[0].rule[0].noncurrent_version_expiration[0].noncurrent_days == 30
    error_message = "Noncurrent versions must expire after noncurrent_version_days (30)."
  }

  assert {
    condition     = aws_s3_bucket_lifecycle_configuration.this[0].rule[1].abort_incomplete_multipart_upload[0].days_after_initiation == 7
    error_message = "Incomplete multipart uploads must be aborted after 7 days."
  }

  assert {
    condition     = !aws_s3_bucket.this.force_destroy
    error_message = "force_destroy must be off by default."
  }
}

run "policy_tls_cloudfront_conditional_writes" {
  module {
    source = "./modules/bucket"
  }

  variables {
    registry_prefix = "incus"
  }

  assert {
    condition     = local.bucket_policy.DenyInsecureTransport.Effect == "Deny" && local.bucket_policy.DenyInsecureTransport.Condition.Bool["aws:SecureTransport"] == "false"
    error_message = "Requests without TLS must be denied."
  }

  assert {
    condition = (
      local.bucket_policy.CloudFrontReadsRegistry.Principal.Service == "cloudfront.amazonaws.com" &&
      local.bucket_policy.CloudFrontReadsRegistry.Action == "s3:GetObject" &&
      local.bucket_policy.CloudFrontReadsRegistry.Condition.StringEquals["AWS:SourceArn"] == var.cloudfront_distribution_arn &&
      local.bucket_policy.CloudFrontReadsRegistry.Resource == ["arn:aws:s3:::registry-test/incus/images/*", "arn:aws:s3:::registry-test/incus/streams/v1/*"]
    )
    error_message = "Only the distribution may read, and only the registry's two prefixes."
  }

  assert {
    condition     = !contains(keys(local.bucket_policy), "CloudFrontSeesMissingKeys")
    error_message = "CloudFront gets no s3:ListBucket unless asked."
  }

  assert {
    condition = (
      local.bucket_policy.DenyImageWritesWithoutIfNoneMatch.Resource == "arn:aws:s3:::registry-test/incus/images/*" &&
      local.bucket_policy.DenyImageWritesWithoutIfNoneMatch.Condition.Null == { "s3:if-none-match" = "true" } &&
      local.bucket_policy.DenyImageWritesWithoutIfNoneMatch.Condition.Bool == { "s3:ObjectCreationOperation" = "true" }
    )
    error_message = "Image writes without If-None-Match must be denied (multipart parts exempted)."
  }

  assert {
    condition = (
      local.bucket_policy.DenyCatalogWritesWithoutCondition.Resource == "arn:aws:s3:::registry-test/incus/streams/v1/*" &&
      local.bucket_policy.DenyCatalogWritesWithoutCondition.Condition.Null == { "s3:if-match" = "true", "s3:if-none-match" = "true" }
    )
    error_message = "Catalog writes without If-Match or If-None-Match must be denied."
  }
}

run "kms_list_bucket_no_enforcement" {
  module {
    source = "./modules/bucket"
  }

  variables {
    kms_key_arn                = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    cloudfront_list_bucket     = true
    enforce_conditional_writes = false
  }

  assert {
    condition     = one(one(aws_s3_bucket_server_side_encryption_configuration.this.rule).apply_server_side_encryption_by_default).sse_algorithm == "aws:kms"
    error_message = "A KMS key must switch encryption to SSE-KMS."
  }

  assert {
    condition     = one(aws_s3_bucket_server_side_encryption_configuration.this.rule).bucket_key_enabled
    error_message = "SSE-KMS must use a bucket key."
  }

  assert {
    condition     = local.bucket_policy.CloudFrontSeesMissingKeys.Action == "s3:ListBucket" && local.bucket_policy.CloudFrontSeesMissingKeys.Resource == "arn:aws:s3:::registry-test"
    error_message = "cloudfront_list_bucket must grant the distribution s3:ListBucket on the bucket."
  }

  assert {
    condition     = length(setintersection(keys(local.bucket_policy), ["DenyImageWritesWithoutIfNoneMatch", "DenyCatalogWritesWithoutCondition"])) == 0
    error_message = "enforce_conditional_writes = false must drop the Deny statements."
  }
}

run "minio_subset" {
  module {
    source = "./modules/bucket"
  }

  variables {
    aws_only_resources = false
  }

  assert {
    condition = (
      length(aws_s3_bucket_public_access_block.this) + length(aws_s3_bucket_ownership_controls.this) +
      length(aws_s3_bucket_lifecycle_configuration.this) + length(aws_s3_bucket_policy.this) == 0
    )
    error_message = "aws_only_resources = false must leave out every AWS-only resource."
  }

  assert {
    condition     = aws_s3_bucket_versioning.this.versioning_configuration[0].status == "Enabled"
    error_message = "The MinIO subset keeps versioning."
  }
}

run "rejects_prefix_with_slashes" {
  command = plan
  module {
    source = "./modules/bucket"
  }
  variables {
    registry_prefix = "/incus/"
  }
  expect_failures = [var.registry_prefix]
}

run "rejects_zero_noncurrent_days" {
  command = plan
  module {
    source = "./modules/bucket"
  }
  variables {
    noncurrent_version_days = 0
  }
  expect_failures = [var.noncurrent_version_days]
}

run "rejects_bad_bucket_name" {
  command = plan
  module {
    source = "./modules/bucket"
  }
  variables {
    bucket_name = "Registry_Bucket"
  }
  expect_failures = [var.bucket_name]
}
